"""Bit-exact ingest -> assemble round trips of real checkpoints, through the API and the CLI."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from store_helpers import finetune_of, object_files, run_cli, sha256_tree

from pbkit.store.assemble import AssemblyError
from pbkit.store.index import ModelExistsError
from pbkit.store.ingest import digest_pass


def test_bundled_minilm_round_trip_bit_exact(store, store_dir, bundled_dir, tmp_path):
    result = store.ingest(bundled_dir, name="minilm")
    assert result.kind == "base" and result.base is None and not result.unchanged
    assert result.files == len(sha256_tree(bundled_dir))
    recipe = store.recipe("minilm")
    assert recipe.id == result.recipe_id
    # the recipe records every file with its SHA-256, subdirectories included
    assert {f.path: f.sha256 for f in recipe.files} == sha256_tree(bundled_dir)
    st = next(f for f in recipe.files if f.path == "model.safetensors")
    assert st.kind == "safetensors" and len(st.tensors) > 100

    out = tmp_path / "out"
    report = store.assemble("minilm", out)
    assert report.files == result.files
    assert sha256_tree(out) == sha256_tree(bundled_dir)
    assert not [p for p in tmp_path.iterdir() if "pbkit-tmp" in p.name]  # temp dir renamed away

    # re-ingesting writes no object and reports the model unchanged
    before = object_files(store_dir)
    again = store.ingest(bundled_dir, name="minilm")
    assert again.unchanged and again.new_objects == 0 and again.recipe_id == result.recipe_id
    assert object_files(store_dir) == before

    # the digest pass computes the same block ids without writing anything
    dry = digest_pass(bundled_dir)
    assert {f.recipe.path: f.recipe.tensors for f in dry.files}["model.safetensors"] == st.tensors
    assert object_files(store_dir) == before


def test_assembled_minilm_gives_identical_outputs(store, bundled_dir, tmp_path):
    import transformers  # a hard dependency (pbkit[zoo]): a broken install fails, it does not skip

    store.ingest(bundled_dir, name="minilm")
    out = tmp_path / "minilm"
    store.assemble("minilm", out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    batch = tok(["parameter blocks", "broadcast caching"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = transformers.AutoModel.from_pretrained(bundled_dir)(**batch).last_hidden_state
        b = transformers.AutoModel.from_pretrained(out)(**batch).last_hidden_state
    assert torch.equal(a, b)


def test_partial_finetune_dedups_against_base(store, bundled_dir, tmp_path):
    store.ingest(bundled_dir, name="minilm")
    changed = ["pooler.dense.weight", "encoder.layer.5.output.dense.weight"]
    sd = load_file(str(bundled_dir / "model.safetensors"))
    assert all(k in sd for k in changed)
    ft = finetune_of(bundled_dir, tmp_path / "ft", changed)
    r = store.ingest(ft, name="minilm-ft", base="minilm")
    assert r.kind == "partial-finetune" and r.base == "minilm"
    new_bytes = sum(sd[k].numel() * 4 for k in changed)
    # only the changed tensors and the new header are new objects (plus the recipe)
    assert new_bytes <= r.new_bytes <= new_bytes + 200_000
    stats = store.stats()
    assert stats["models"] == 2
    assert stats["unique_bytes"] < 0.55 * stats["logical_bytes"]
    recipe = store.recipe("minilm-ft")
    assert recipe.base is not None and recipe.base.recipe_id == store.recipe("minilm").id
    assert recipe.base.content_digest == store.recipe("minilm").content_digest
    store.assemble("minilm-ft", tmp_path / "ft-out")
    assert sha256_tree(tmp_path / "ft-out") == sha256_tree(ft)

    # same name, different content: refused, nothing written
    before = object_files(store.root)
    with pytest.raises(ModelExistsError, match="minilm-ft"):
        store.ingest(bundled_dir, name="minilm-ft")
    assert object_files(store.root) == before


def test_full_finetune_and_base_from_config(store, tmp_path):
    from store_helpers import small_model, toy_tensors

    base = small_model(tmp_path / "toy-base", toy_tensors(0))
    store.ingest(base, name="toy-base")
    # every tensor retrained; the config names the base by its path, as save_pretrained does
    full = small_model(tmp_path / "toy-full", toy_tensors(7), config={"model_type": "toy", "_name_or_path": str(base)})
    r = store.ingest(full, name="toy-full")
    assert (r.kind, r.base) == ("full-finetune", "toy-base")
    # a config naming an unknown model: a plain base
    other = small_model(tmp_path / "toy-other", toy_tensors(8), config={"_name_or_path": "nobody/knows"})
    assert store.ingest(other).kind == "base"
    assert "toy-other" in store.list_models()  # default name: the directory name


def test_cli_round_trip_and_json(capsys, store_dir, bundled_dir, tmp_path):
    code, out, err = run_cli(capsys, "--store", store_dir, "ingest", bundled_dir, "--name", "minilm", "--json")
    assert code == 0, err
    ingested = json.loads(out)
    assert ingested["kind"] == "base" and ingested["new_objects"] > 100

    code, out, _ = run_cli(capsys, "--store", store_dir, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["models"] == 1 and stats["blocks"] == ingested["blocks"]
    assert stats["logical_bytes"] == stats["unique_bytes"] == ingested["logical_bytes"]

    for cmd in (["ls", "--json"], ["show", "minilm", "--json"], ["need", "minilm", "--json"]):
        code, out, err = run_cli(capsys, "--store", store_dir, *cmd)
        assert code == 0, err
        json.loads(out)

    out_dir = tmp_path / "assembled"
    code, _, err = run_cli(capsys, "--store", store_dir, "assemble", "minilm", "--out", out_dir)
    assert code == 0, err
    assert sha256_tree(out_dir) == sha256_tree(bundled_dir)

    # the output directory is never overwritten
    code, _, err = run_cli(capsys, "--store", store_dir, "assemble", "minilm", "--out", out_dir)
    assert code != 0 and err.startswith("pbkit: error: ") and str(out_dir) in err and err.count("\n") == 1

    code, out, err = run_cli(capsys, "--store", store_dir, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    before = object_files(store_dir)
    code, out, err = run_cli(capsys, "digest", bundled_dir, "--json")
    assert code == 0, err
    digest = json.loads(out)
    assert digest["blocks"] == ingested["blocks"] and object_files(store_dir) == before

    code, out, err = run_cli(capsys, "--store", store_dir, "show", "nope")
    assert code != 0 and "no model named 'nope'" in err


def test_empty_out_dir_is_filled_and_missing_parent_created(store, tmp_path):
    from store_helpers import small_model, toy_tensors

    src = small_model(tmp_path / "toy", toy_tensors(0))
    (src / "empty.txt").write_bytes(b"")  # an empty file is a valid whole-file block
    store.ingest(src, name="toy")
    empty = tmp_path / "empty-out"
    empty.mkdir()
    store.assemble("toy", empty)
    assert sha256_tree(empty) == sha256_tree(src)
    store.assemble("toy", tmp_path / "a" / "b" / "c")
    assert sha256_tree(tmp_path / "a" / "b" / "c") == sha256_tree(src)
    os.chmod(tmp_path, 0o755)
    with pytest.raises(AssemblyError, match="not an empty directory"):
        store.assemble("toy", empty)


def test_sha_cache_never_serves_an_edited_file(store, tmp_path):
    """A file rewritten in place with the same size and mtime still gets a fresh SHA-256
    (its ctime moved), so the recipe and the assembled copy match the new bytes."""
    from store_helpers import small_model, toy_tensors

    src = small_model(tmp_path / "toy", toy_tensors(0))
    store.ingest(src, name="v1")
    cfg = src / "config.json"
    st = cfg.stat()
    text = cfg.read_text()
    cfg.write_text(text.replace("toy", "tox"))  # same length
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cfg.stat().st_size == st.st_size and cfg.stat().st_mtime_ns == st.st_mtime_ns
    store.ingest(src, name="v2")
    shas = {f.path: f.sha256 for f in store.recipe("v2").files}
    assert shas != {f.path: f.sha256 for f in store.recipe("v1").files}
    store.assemble("v2", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(src)
