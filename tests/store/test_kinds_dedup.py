"""Kinds of model directories and name-independent dedup: tied/renamed tensors, sharded
checkpoints, PEFT adapters (LoRA, IA3, modules_to_save), legacy .bin, an HF cache snapshot."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from store_helpers import object_files, run_cli, sha256_tree, small_model, toy_tensors

from pbkit.store.recipe import Recipe


def test_tied_and_renamed_tensors_dedup(store, tmp_path):
    t = toy_tensors(0)
    # tied weights: the same tensor stored under two names in one file
    tied = dict(t)
    tied["lm_head.weight"] = t["embed.weight"].clone()
    a = small_model(tmp_path / "tied", tied)
    r = store.ingest(a, name="tied")
    st = next(f for f in store.recipe("tied").files if f.kind == "safetensors")
    assert len(st.tensors) == len(tied) and len({x.pb for x in st.tensors}) == len(tied) - 1
    assert r.blocks == len(tied) - 1 + 2  # distinct tensor PBs + header + config.json

    # renamed keys, other file name, other config: every tensor dedups
    renamed = {f"model.{k.replace('.', '_')}.w": v for k, v in t.items()}
    b = small_model(tmp_path / "renamed", renamed, config={"model_type": "other"}, filename="weights.safetensors")
    before = object_files(store.root)
    r2 = store.ingest(b, name="renamed")
    new = object_files(store.root) - before
    assert len(new) == 3  # header, config.json, recipe: no tensor bytes written again
    assert r2.new_bytes < 2_000
    # same bytes but another dtype or shape is a different PB (the id binds both)
    other = {"x": t["embed.weight"].reshape(50, 128), "y": t["layer0.weight"].view(torch.int32)}
    c = small_model(tmp_path / "reshaped", other)
    r3 = store.ingest(c, name="reshaped")
    assert r3.new_bytes > sum(v.numel() * 4 for v in other.values())
    for name, src in (("tied", a), ("renamed", b), ("reshaped", c)):
        store.assemble(name, tmp_path / f"out-{name}")
        assert sha256_tree(tmp_path / f"out-{name}") == sha256_tree(src)


def _tiny_bert(tmp_path):
    import transformers  # a hard dependency (pbkit[zoo]): a broken install fails, it does not skip

    cfg = transformers.BertConfig(
        vocab_size=200,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    return transformers, transformers.BertForSequenceClassification(cfg).eval()


def test_sharded_checkpoint_from_save_pretrained(store, tmp_path):
    transformers, model = _tiny_bert(tmp_path)
    src = tmp_path / "sharded"
    model.save_pretrained(src, max_shard_size="40KB")
    index = json.loads((src / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    r = store.ingest(src, name="sharded")
    recipe = store.recipe("sharded")
    assert {f.path for f in recipe.files if f.kind == "safetensors"} == set(shards)
    out = tmp_path / "out"
    store.assemble("sharded", out)
    assert sha256_tree(out) == sha256_tree(src)
    x = torch.tensor([[1, 5, 9, 2]])
    load = transformers.AutoModelForSequenceClassification.from_pretrained
    with torch.no_grad():
        assert torch.equal(load(src)(x).logits, load(out)(x).logits)

    # the same weights unsharded share every tensor PB with the sharded copy
    single = tmp_path / "single"
    model.save_pretrained(single)
    r2 = store.ingest(single, name="single")
    assert r2.new_bytes < 20_000 < r.new_bytes


def test_shard_index_escaping_the_model_dir_is_refused(capsys, store_dir, tmp_path):
    src = small_model(tmp_path / "evil", toy_tensors(0))
    (tmp_path / "outside.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    (src / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"embed.weight": "../outside.safetensors"}})
    )
    code, _, err = run_cli(capsys, "--store", store_dir, "ingest", src)
    assert code != 0 and err.startswith("pbkit: error: ") and "escapes the model directory" in err
    assert "model.safetensors.index.json" in err and err.count("\n") == 1
    assert object_files(store_dir) == set()


def test_lora_and_ia3_adapters(store, tmp_path):
    import peft  # a hard dependency (pbkit[zoo])

    transformers, model = _tiny_bert(tmp_path)
    base_dir = tmp_path / "bert-base"
    model.save_pretrained(base_dir)
    store.ingest(base_dir, name="bert-base")
    base_pbs = {t.pb for f in store.recipe("bert-base").files for t in f.tensors}

    # LoRA with modules_to_save: the classifier copy is saved in the adapter and dedups
    cfg = peft.LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"])
    lora = peft.get_peft_model(transformers.BertForSequenceClassification.from_pretrained(base_dir), cfg)
    lora_dir = tmp_path / "lora"
    lora.save_pretrained(lora_dir)
    acfg = json.loads((lora_dir / "adapter_config.json").read_text())
    assert acfg["base_model_name_or_path"] == str(base_dir)
    r = store.ingest(lora_dir, name="lora")
    assert (r.kind, r.base) == ("adapter", "bert-base")  # resolved from base_model_name_or_path
    recipe = store.recipe("lora")
    assert recipe.base is not None and recipe.base.recipe_id == store.recipe("bert-base").id
    adapter_pbs = {t.name: t.pb for f in recipe.files for t in f.tensors}
    cls = [n for n in adapter_pbs if "classifier" in n]
    assert cls and all(adapter_pbs[n] in base_pbs for n in cls)
    out = tmp_path / "lora-out"
    store.assemble("lora", out)
    assert sha256_tree(out) == sha256_tree(lora_dir)

    # IA3 with an explicit --base
    cfg3 = peft.IA3Config(target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"])
    ia3 = peft.get_peft_model(transformers.BertForSequenceClassification.from_pretrained(base_dir), cfg3)
    ia3_dir = tmp_path / "ia3"
    ia3.save_pretrained(ia3_dir)
    cfg_text = json.loads((ia3_dir / "adapter_config.json").read_text())
    cfg_text["base_model_name_or_path"] = None
    (ia3_dir / "adapter_config.json").write_text(json.dumps(cfg_text))
    assert store.ingest(ia3_dir, name="ia3", base="bert-base").kind == "adapter"

    # an adapter whose base cannot be resolved is still ingested, with a warning
    with pytest.warns(UserWarning, match="ingested without a base"):
        r = store.ingest(ia3_dir, name="ia3-orphan")
    assert (r.kind, r.base) == ("adapter", None)


def test_adapter_without_base_warns_on_cli_stderr(capsys, store_dir, tmp_path):
    src = small_model(tmp_path / "adapter", {"base_model.model.x.lora_A.weight": torch.ones(4, 8)})
    (src / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "org/absent"}))
    code, out, err = run_cli(capsys, "--store", store_dir, "ingest", src, "--json")
    assert code == 0
    assert json.loads(out)["kind"] == "adapter"
    assert err.startswith("pbkit: warning: ") and "org/absent" in err


def test_legacy_bin_is_a_whole_file_blob(store, tmp_path):
    src = tmp_path / "legacy"
    src.mkdir()
    (src / "config.json").write_text("{}")
    torch.save(toy_tensors(0), src / "pytorch_model.bin")
    r = store.ingest(src, name="legacy")
    f = next(f for f in store.recipe("legacy").files if f.path == "pytorch_model.bin")
    assert f.kind == "blob" and r.kind == "base"
    store.assemble("legacy", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(src)


def test_hub_cache_snapshot_offline(store, tmp_path, monkeypatch):
    """A real HF cache layout: snapshots/<rev>/ files are relative symlinks into blobs/."""
    import huggingface_hub  # noqa: F401  (a core dependency: the hub cache layout below is its)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    repo = cache / "models--toyorg--toy"
    rev = "0123456789abcdef0123456789abcdef01234567"
    src = small_model(tmp_path / "plain", toy_tensors(3))
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / rev).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    for p in src.iterdir():
        blob = repo / "blobs" / f"blob-{p.name}"
        shutil.copy(p, blob)
        os.symlink(os.path.relpath(blob, repo / "snapshots" / rev), repo / "snapshots" / rev / p.name)
    from pbkit.store import ingest as ingest_mod

    resolved = ingest_mod.resolve_source("toyorg/toy", revision=rev, cache_dir=cache)
    assert resolved.origin["revision"] == rev
    r = store.ingest(resolved.root, name="toyorg/toy")
    assert r.files == 2
    r2 = store.ingest("toyorg/toy", name="toy-hub", revision=rev, cache_dir=cache)
    assert store.recipe("toy-hub").source["repo_id"] == "toyorg/toy"
    assert store.recipe("toy-hub").source["revision"] == rev
    assert r2.new_objects == 1  # just the recipe: the same files were stored from the snapshot dir
    store.assemble("toy-hub", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(src)


def test_recipe_json_round_trip(store, bundled_dir):
    store.ingest(bundled_dir, name="minilm")
    recipe = store.recipe("minilm")
    again = Recipe.from_json(recipe.canonical_json())
    assert again == recipe and again.id == recipe.id
    assert store.objects.read(recipe.id) == recipe.canonical_json()  # the recipe is an object too
