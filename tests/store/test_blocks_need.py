"""Assembly from a directory of received blocks (any order, verified on arrival) and the
"what do I still need" query."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from store_helpers import finetune_of, run_cli, sha256_tree, small_model, toy_tensors

from pbkit.store.assemble import AssemblyError


@pytest.fixture
def two_models(store, tmp_path):
    """A toy base and a partial fine-tune of it (two tensors changed)."""
    base = small_model(tmp_path / "base", toy_tensors(0, n=6))
    ft = finetune_of(base, tmp_path / "ft", ["layer1.weight", "layer4.weight"])
    store.ingest(base, name="base")
    store.ingest(ft, name="ft", base="base")
    return base, ft


def _deliver(store, name, dest, rng, drop=(), corrupt=(), suffix_every=2):
    """Copy a model's blocks into `dest` in a shuffled order, like a broadcast; some as `<id>.pb`."""
    dest.mkdir(parents=True, exist_ok=True)
    ids = sorted(store.recipe(name).blocks())
    order = rng.permutation(len(ids))
    for k, j in enumerate(order):
        bid = ids[j]
        if bid in drop:
            continue
        target = dest / (f"{bid}.pb" if k % suffix_every == 0 else bid)
        shutil.copyfile(store.objects.path(bid), target)
        if bid in corrupt:
            data = bytearray(target.read_bytes())
            data[len(data) // 2] ^= 0x01  # one flipped bit
            target.write_bytes(bytes(data))
    return ids


def test_assemble_from_shuffled_blocks_with_corrupt_and_missing(store, two_models, tmp_path):
    _, ft = two_models
    rng = np.random.default_rng(7)
    recipe = store.recipe("ft")
    blocks = recipe.blocks()
    tensor_ids = sorted(b.id for b in blocks.values() if b.kind == "tensor")
    missing, corrupt = tensor_ids[0], tensor_ids[1]
    received = tmp_path / "received"
    _deliver(store, "ft", received, rng, drop={missing}, corrupt={corrupt})
    (received / "not-a-block.txt").write_text("ignored")

    out = tmp_path / "out"
    with pytest.raises(AssemblyError) as info:
        store.assemble("ft", out, from_blocks=received)
    bad = {b.id: b for b in info.value.unavailable}
    assert set(bad) == {missing, corrupt}
    assert bad[missing].reason == "missing" and bad[corrupt].reason == "corrupt"
    for bid in (missing, corrupt):
        assert bad[bid].nbytes == blocks[bid].nbytes
        assert bad[bid].tensors == blocks[bid].tensors and bad[bid].tensors[0].startswith("model.safetensors:")
    msg = str(info.value)
    assert "\n" not in msg and "1 missing, 1 corrupt" in msg and missing[:16] in msg
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "pbkit-tmp" in p.name]

    # the missing and the corrupt block arrive (again); assembly is now bit-exact
    for bid in (missing, corrupt):
        (received / f"{bid}.pb").unlink(missing_ok=True)
        (received / bid).unlink(missing_ok=True)
        shutil.copyfile(store.objects.path(bid), received / bid)
    store.assemble("ft", out, from_blocks=received)
    assert sha256_tree(out) == sha256_tree(ft)


def test_cli_assemble_from_blocks_lists_missing(capsys, store, two_models, tmp_path):
    rng = np.random.default_rng(1)
    recipe = store.recipe("ft")
    drop = sorted(b.id for b in recipe.blocks().values() if b.kind == "tensor")[:2]
    received = tmp_path / "rx"
    _deliver(store, "ft", received, rng, drop=set(drop))
    code, _, err = run_cli(
        capsys, "--store", store.root, "assemble", "ft", "--out", tmp_path / "o", "--from-blocks", received
    )
    assert code != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("pbkit: error: cannot assemble 'ft'") and "2 missing" in last
    for bid in drop:  # the full table on stderr names every missing block
        assert bid in err.replace("\n", "").replace("│", "").replace(" ", "") or bid[:16] in err
    assert not (tmp_path / "o").exists()


def test_need_with_base_held(store, two_models, capsys, tmp_path):
    recipe_ft = store.recipe("ft")
    base_blocks = store.model_blocks("base")
    report = store.need("ft", base_blocks)
    needed = {b.id for b in report.needed}
    # exactly the changed tensors (the header is the base's: same names, shapes and offsets)
    ft_tensors = {t.name: t.pb for f in recipe_ft.files for t in f.tensors}
    base_tensors = {t.name: t.pb for f in store.recipe("base").files for t in f.tensors}
    changed = {ft_tensors[k] for k in ft_tensors if ft_tensors[k] != base_tensors[k]}
    assert changed == {ft_tensors["layer1.weight"], ft_tensors["layer4.weight"]}
    header = next(f.header_pb for f in recipe_ft.files if f.kind == "safetensors")
    assert header in base_blocks and needed == changed
    assert report.needed_bytes == sum(recipe_ft.blocks()[b].nbytes for b in needed)
    assert report.needed_bytes + report.have_bytes == report.total_bytes == recipe_ft.block_bytes()
    # holding nothing: everything; holding the model itself: nothing
    assert store.need("ft", set()).needed_bytes == recipe_ft.block_bytes()
    assert store.need("ft", store.model_blocks("ft")).needed == []

    code, out, err = run_cli(capsys, "--store", store.root, "need", "ft", "--have", "base", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {b["id"] for b in data["needed"]} == needed and data["needed_bytes"] == report.needed_bytes

    # a device's block directory: a corrupt block there does not count as held
    held = tmp_path / "held"
    rng = np.random.default_rng(3)
    corrupt = sorted(base_blocks & {t.pb for f in recipe_ft.files for t in f.tensors})[0]
    _deliver(store, "base", held, rng, corrupt={corrupt})
    code, out, err = run_cli(capsys, "--store", store.root, "need", "ft", "--have-blocks", held, "--json")
    assert code == 0, err
    assert {b["id"] for b in json.loads(out)["needed"]} == needed | {corrupt}
