"""verify, gc and rm; a corrupt or missing object is never assembled as valid."""

from __future__ import annotations

import json

import pytest
from store_helpers import finetune_of, object_files, run_cli, sha256_tree, small_model, toy_tensors

from pbkit.store import Store, StoreError
from pbkit.store.assemble import AssemblyError


@pytest.fixture
def populated(store, tmp_path):
    base = small_model(tmp_path / "base", toy_tensors(0, n=6))
    ft = finetune_of(base, tmp_path / "ft", ["layer2.weight"])
    store.ingest(base, name="base")
    store.ingest(ft, name="ft", base="base")
    return base, ft


def test_verify_names_corrupt_and_missing_objects(store, populated, capsys, tmp_path):
    assert store.verify().ok
    only_ft = next(t.pb for f in store.recipe("ft").files for t in f.tensors if t.name == "layer2.weight")
    shared = next(t.pb for f in store.recipe("ft").files for t in f.tensors if t.name == "layer0.weight")
    path = store.objects.path(shared)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x80
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    store.objects.path(only_ft).unlink()

    report = store.verify()
    assert not report.ok
    assert report.corrupt == [shared] and report.missing == [only_ft]
    assert report.models_hit == ["base", "ft"]
    assert any(shared in p and "corrupt" in p and "base, ft" in p for p in report.problems)
    assert any(only_ft in p and "missing" in p and "used by ft" in p for p in report.problems)

    code, out, err = run_cli(capsys, "--store", store.root, "verify", "--json")
    assert code != 0 and json.loads(out)["ok"] is False
    assert err.startswith("pbkit: error: ") and "1 corrupt and 1 missing objects (models hit: base, ft)" in err

    # assembly refuses both, writes nothing
    for name in ("base", "ft"):
        out_dir = tmp_path / f"out-{name}"
        with pytest.raises(AssemblyError) as info:
            store.assemble(name, out_dir)
        assert shared in {b.id for b in info.value.unavailable}
        assert not out_dir.exists()
    # re-ingesting the model repairs the missing object (objects are checked by existence)
    assert store.ingest(tmp_path / "ft", name="ft").new_objects == 1


def test_rm_and_gc(store, populated, tmp_path):
    base, ft = populated
    only_ft = {t.pb for f in store.recipe("ft").files for t in f.tensors} - store.model_blocks("base")
    ft_recipe = store.recipe("ft").id
    stray = store.objects.tmp / ".obj-stray"
    stray.write_bytes(b"half an object")
    before = object_files(store.root)
    assert store.verify().ok and store.verify().temp_files == 1  # temp files are ignored by verify

    freed = store.remove("ft")
    assert freed == len(only_ft) + 1  # its own tensors and its recipe
    assert store.list_models() == ["base"]
    assert object_files(store.root) == before  # rm only forgets; gc deletes
    assert store.verify().unreferenced_objects == len(only_ft) + 1

    report = store.gc()
    assert report.removed_objects == len(only_ft) + 1 and report.removed_temp_files == 1
    assert object_files(store.root) == before - only_ft - {ft_recipe}
    assert not stray.exists()
    v = store.verify()
    assert v.ok and v.unreferenced_objects == 0
    store.assemble("base", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(base)
    assert store.gc().removed_objects == 0
    with pytest.raises(Exception, match="no model named 'ft'"):
        store.remove("ft")


def test_stats_count_shared_bytes(store, populated):
    s = store.stats()
    assert s["models"] == 2
    base_bytes = store.recipe("base").logical_bytes
    assert s["logical_bytes"] == base_bytes + store.recipe("ft").logical_bytes
    changed = 64 * 64 * 4
    assert s["unique_bytes"] == base_bytes + changed
    assert s["shared_blocks"] >= 6


def test_store_open_refuses_foreign_dirs(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_text("not a store")
    with pytest.raises(StoreError, match="not a pbkit store"):
        Store.open(foreign)
    s = Store.open(tmp_path / "ok")
    s.close()
    (tmp_path / "ok" / "pbkit-store.json").write_text(json.dumps({"format": "pbkit-store", "version": 99}))
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path / "ok")
