"""End to end through the real store: ingest real models, fine-tunes and adapters, assemble them
into fresh directories, and show every file is bit-exact and the loaded models give identical
outputs (`torch.equal`); shared tensors dedup as PBs."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pbkit.store import Store
from pbkit.zoo.finetune import build_tiny_model, load_for_inference

from .conftest import ADAPTERS, BASE_NAMES


def sha_tree(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under root (symlinks followed)."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def content_keys(path: Path) -> set[tuple]:
    return {
        (t.dtype, tuple(t.shape), t.contiguous().view(torch.uint8).numpy().tobytes())
        for t in load_file(str(path)).values()
    }


def tensor_blocks(recipe) -> dict[str, object]:
    return {i: b for i, b in recipe.blocks().items() if b.kind == "tensor"}


def outputs(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


# Token ids every tiny model and MiniLM accepts (>= 3: past the tiny models' special ids).
IDS = {"input_ids": torch.tensor([[5, 17, 99, 3, 250, 7, 42, 8], [11, 12, 13, 14, 15, 16, 17, 18]])}


@pytest.fixture(scope="module")
def store(tmp_path_factory, minilm, tiny_gpt2, tiny_llama, adapters, minilm_partial):
    store = Store.open(tmp_path_factory.mktemp("store") / "store")
    store.ingest(minilm, name="minilm")
    store.ingest(tiny_gpt2, name="tiny-gpt2")
    store.ingest(tiny_llama, name="tiny-llama")
    for name, (_, path) in adapters.items():
        store.ingest(path, name=name, base=BASE_NAMES[ADAPTERS[name][0]])
    store.ingest(minilm_partial, name="minilm-k3", base="minilm")
    yield store
    store.close()


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("assembled")


def test_bundled_minilm_roundtrip(store, minilm, out_root):
    from transformers import AutoTokenizer

    out = out_root / "minilm"
    store.assemble("minilm", out)
    assert sha_tree(out) == sha_tree(minilm)  # incl. 1_Pooling/config.json and the tokenizer
    assert store.recipe("minilm").kind == "base"
    tok = AutoTokenizer.from_pretrained(out)
    inputs = tok(
        ["Parameter blocks are cached at the edge.", "A second, longer sentence here."],
        padding=True,
        return_tensors="pt",
    )
    original, rebuilt = load_for_inference(minilm), load_for_inference(out)
    assert torch.equal(outputs(original, inputs), outputs(rebuilt, inputs))


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapter_roundtrip_on_assembled_base(store, adapters, out_root, name):
    base, adapter = adapters[name]
    base_name = BASE_NAMES[ADAPTERS[name][0]]
    base_out, adapter_out = out_root / f"{name}-base", out_root / name
    store.assemble(base_name, base_out)
    store.assemble(name, adapter_out)
    assert sha_tree(base_out) == sha_tree(base)
    assert sha_tree(adapter_out) == sha_tree(adapter)
    recipe = store.recipe(name)
    assert recipe.kind == "adapter" and recipe.base is not None and recipe.base.name == base_name
    original = load_for_inference(adapter, base_dir=base)
    rebuilt = load_for_inference(adapter_out, base_dir=base_out)
    a, b = outputs(original, IDS), outputs(rebuilt, IDS)
    assert torch.equal(a, b)
    # the adapter changes the base's outputs (it was really trained)
    plain = outputs(load_for_inference(base_out), IDS)
    assert a.shape != plain.shape or not torch.equal(a, plain)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapter_needs_only_what_the_base_lacks(store, adapters, name):
    """A device holding the base's PBs needs exactly the adapter tensors not already in it."""
    base, adapter = adapters[name]
    base_name = BASE_NAMES[ADAPTERS[name][0]]
    have = set(store.recipe(base_name).blocks())
    report = store.need(name, have)
    needed = [b for b in report.needed if b.kind == "tensor"]
    in_base = content_keys(base / "model.safetensors")
    file_tensors = load_file(str(adapter / "adapter_model.safetensors"))
    new = {
        k
        for k, t in file_tensors.items()
        if (t.dtype, tuple(t.shape), t.contiguous().view(torch.uint8).numpy().tobytes()) not in in_base
    }
    assert {t.split(":", 1)[1] for b in needed for t in b.tensors} == new
    if name == "llama-lora-emb":
        # peft saved the (frozen) base embedding inside the adapter: a copy that dedups
        emb = "base_model.model.model.embed_tokens.base_layer.weight"
        assert emb in file_tensors and emb not in new
        assert report.have_bytes >= file_tensors[emb].numel() * 4
    if name == "gpt2-lora-cls-mts":
        # the modules_to_save copy was trained, so it is new bytes, not a base block
        assert any(k.endswith("ln_f.weight") for k in new)


def test_partial_finetune_shares_frozen_blocks(store, minilm, minilm_partial, out_root):
    base_recipe, ft_recipe = store.recipe("minilm"), store.recipe("minilm-k3")
    assert ft_recipe.kind == "partial-finetune" and ft_recipe.base.name == "minilm"
    shared = set(tensor_blocks(base_recipe)) & set(tensor_blocks(ft_recipe))
    assert len(shared) == 5 + 3 * 16  # embeddings + 3 frozen blocks, despite the "bert." prefix
    report = store.need("minilm-k3", set(base_recipe.blocks()))
    needed_tensors = [b for b in report.needed if b.kind == "tensor"]
    assert len(needed_tensors) == len(tensor_blocks(ft_recipe)) - 53
    # the copied tokenizer files are whole-file blocks the base already has
    needed_paths = {t for b in report.needed if b.kind == "blob" for t in b.tensors}
    assert needed_paths == {"config.json"}
    out = out_root / "minilm-k3"
    store.assemble("minilm-k3", out)
    assert sha_tree(out) == sha_tree(minilm_partial)
    original, rebuilt = load_for_inference(minilm_partial), load_for_inference(out)
    assert torch.equal(outputs(original, IDS), outputs(rebuilt, IDS))


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_hf_cache(cache: Path, repo_id: str, model_dir: Path, revision: str) -> Path:
    """The layout huggingface_hub writes: blobs named by git/LFS hash, refs/main holding the
    commit, snapshots/<commit>/<file> as relative symlinks into blobs/."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)  # no trailing newline, as the hub client writes
    snap = repo / "snapshots" / revision
    for src in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = src.relative_to(model_dir)
        data = src.read_bytes()
        lfs = src.suffix in {".safetensors", ".bin"}  # large files are LFS: blob name = sha256
        blob = hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data)
        (repo / "blobs" / blob).write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / blob, link.parent))
    return snap


def test_hub_cache_source_roundtrip(store, minilm, out_root, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    repo_id, rev = "sentence-transformers/all-MiniLM-L6-v2", hashlib.sha1(b"pbkit-test").hexdigest()
    cache = tmp_path / "hf-cache"
    snap = make_hf_cache(cache, repo_id, minilm, rev)
    assert (snap / "model.safetensors").is_symlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # read once at import
    result = store.ingest(repo_id, name="hub-minilm", revision=rev)
    recipe = store.recipe("hub-minilm")
    assert recipe.source["repo_id"] == repo_id and recipe.source["revision"] == rev
    # the same bytes as the bundled copy: every block already stored
    assert set(recipe.blocks()) <= set(store.recipe("minilm").blocks())
    assert result.new_objects == 1  # only the recipe object (its source differs)
    out = out_root / "hub-minilm"
    store.assemble("hub-minilm", out)
    assert sha_tree(out) == sha_tree(minilm)
    assert not any(p.is_symlink() for p in out.rglob("*"))  # real files, not links into a cache
    # unpinned: refs/main resolves to the same commit
    store.ingest(repo_id, name="hub-minilm-main")
    assert store.recipe("hub-minilm-main").source["revision"] == rev


def test_sharded_checkpoint_roundtrip_and_dedup(store, tiny_llama, out_root, tmp_path):
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "tiny-llama-sharded"
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model.save_pretrained(sharded, max_shard_size="100KB")
    shards = sorted(p.name for p in sharded.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (sharded / "model.safetensors.index.json").is_file()
    store.ingest(sharded, name="tiny-llama-sharded")
    report = store.need("tiny-llama-sharded", set(store.recipe("tiny-llama").blocks()))
    assert not [b for b in report.needed if b.kind == "tensor"]  # same tensors, other files
    out = out_root / "tiny-llama-sharded"
    store.assemble("tiny-llama-sharded", out)
    assert sha_tree(out) == sha_tree(sharded)
    assert torch.equal(outputs(load_for_inference(tiny_llama), IDS), outputs(load_for_inference(out), IDS))


def test_legacy_pytorch_bin_roundtrip(store, out_root, tmp_path):
    from transformers import BertModel

    src = build_tiny_model("bert", tmp_path / "tiny-bert", seed=11)
    legacy = tmp_path / "tiny-bert-legacy"
    legacy.mkdir()
    shutil.copyfile(src / "config.json", legacy / "config.json")
    model = BertModel.from_pretrained(src).eval()
    torch.save(model.state_dict(), legacy / "pytorch_model.bin")
    store.ingest(legacy, name="tiny-bert-legacy")
    files = {f.path: f for f in store.recipe("tiny-bert-legacy").files}
    assert files["pytorch_model.bin"].kind == "blob"  # kept whole, validated, not re-serialised
    out = out_root / "tiny-bert-legacy"
    store.assemble("tiny-bert-legacy", out)
    assert sha_tree(out) == sha_tree(legacy)
    rebuilt = load_for_inference(out)
    assert torch.equal(outputs(model, IDS), outputs(rebuilt, IDS))


def test_store_verifies_clean_after_everything(store):
    """Runs last in this module: every object written above re-hashes to its id."""
    report = store.verify()
    assert report.ok, report.problems
    stats = store.stats()
    assert stats["unique_bytes"] < stats["logical_bytes"]  # the copies above dedup
