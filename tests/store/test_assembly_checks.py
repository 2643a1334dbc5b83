"""What assembly verifies by default (every block against its id, as it is written), what the
deep check adds (every file's SHA-256 against the recipe), and the recipe-id check."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3

import pytest
from store_helpers import run_cli, sha256_tree, small_model, toy_tensors

from pbkit.store import assemble as A
from pbkit.store.recipe import RecipeError


@pytest.fixture
def toy(store, tmp_path):
    src = small_model(tmp_path / "toy", toy_tensors(3, n=5, dim=256))
    store.ingest(src, name="toy")
    return src


def _blocks_dir(store, name, dest):
    dest.mkdir()
    for bid in store.recipe(name).blocks():
        shutil.copyfile(store.objects.path(bid), dest / bid)
    return dest


def test_received_blocks_of_wrong_length_are_corrupt(store, toy, tmp_path):
    received = _blocks_dir(store, "toy", tmp_path / "received")
    tensors = sorted(b.id for b in store.recipe("toy").blocks().values() if b.kind == "tensor")
    longer, shorter = tensors[0], tensors[1]
    with open(received / longer, "ab") as fh:
        fh.write(b"x")
    data = (received / shorter).read_bytes()
    (received / shorter).write_bytes(data[:-1])
    out = tmp_path / "out"
    with pytest.raises(A.AssemblyError) as info:
        store.assemble("toy", out, from_blocks=received)
    assert {b.id: b.reason for b in info.value.unavailable} == {longer: "corrupt", shorter: "corrupt"}
    assert not out.exists()


def test_block_source_without_block_path_still_assembles(store, toy, tmp_path):
    class ReadOnlySource:  # the minimal BlockSource: has/read/describe, no block_path
        def __init__(self, inner):
            self.inner = inner

        def has(self, block_id):
            return self.inner.has(block_id)

        def read(self, block_id):
            return self.inner.read(block_id)

        def describe(self):
            return "read-only test source"

    out = tmp_path / "out"
    A.assemble(store.recipe("toy"), out, ReadOnlySource(A.StoreBlocks(store.objects)), deep=True)
    assert sha256_tree(out) == sha256_tree(toy)


def test_deep_check_rejects_a_recipe_whose_sha256_disagrees(store, toy, tmp_path):
    recipe = store.recipe("toy")
    target = next(f for f in recipe.files if f.kind == "safetensors")
    wrong = dataclasses.replace(
        recipe,
        files=tuple(dataclasses.replace(f, sha256="0" * 64) if f is target else f for f in recipe.files),
    )
    blocks = A.StoreBlocks(store.objects)
    A.assemble(wrong, tmp_path / "shallow", blocks)  # blocks all verify: the default check passes
    with pytest.raises(A.AssemblyError) as info:
        A.assemble(wrong, tmp_path / "deep", blocks, deep=True)
    assert target.path in str(info.value)
    assert not (tmp_path / "deep").exists()


def test_cli_deep_assembly(capsys, store_dir, store, toy, tmp_path):
    code, out, err = run_cli(
        capsys, "--store", str(store_dir), "assemble", "toy", "--out", str(tmp_path / "o"), "--deep"
    )
    assert code == 0, err
    assert "SHA-256 verified" in out
    assert sha256_tree(tmp_path / "o") == sha256_tree(toy)


def test_recipe_altered_in_the_index_is_refused(store, store_dir, toy, tmp_path):
    db = sqlite3.connect(store_dir / "index.sqlite")
    text = db.execute("SELECT recipe FROM models WHERE name='toy'").fetchone()[0]
    db.execute("UPDATE models SET recipe=? WHERE name='toy'", (text.replace('"kind":"base"', '"kind":"adapter"'),))
    db.commit()
    db.close()
    with pytest.raises(RecipeError, match="does not match its id"):
        store.assemble("toy", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad_path", ["../escaped.json", "/etc/passwd", "a/../../b", "a//b"])
def test_recipe_with_a_path_outside_the_model_dir_is_refused(store, toy, bad_path):
    import json

    from pbkit.store.recipe import Recipe

    body = json.loads(store.recipe("toy").canonical_json())
    blob = next(f for f in body["files"] if f["kind"] == "blob")
    blob["path"] = bad_path
    with pytest.raises(RecipeError, match="not a plain relative path"):
        Recipe.from_json(json.dumps(body))


def test_assembled_directory_and_files_follow_the_umask(store, toy, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = tmp_path / "assembled"
        store.assemble("toy", out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # mkdtemp's 0700 must not leak through the rename
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()} == {0o644}
