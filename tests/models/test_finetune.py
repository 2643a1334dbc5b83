"""pbkit.zoo.finetune on its own: determinism, frozen tensors, real training, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pbkit.errors import PbkitError
from pbkit.zoo.finetune import (
    TINY_ARCHS,
    AdapterSpec,
    FinetuneSpec,
    build_tiny_model,
    finetune,
    load_for_inference,
    train_adapter,
)


def file_hashes(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def content_keys(path: Path) -> dict[tuple, str]:
    """(dtype, shape, raw bytes) -> tensor name: what a name-independent PB id sees."""
    return {
        (t.dtype, tuple(t.shape), t.contiguous().view(torch.uint8).numpy().tobytes()): name
        for name, t in load_file(str(path)).items()
    }


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_model_is_bit_identical_by_seed(arch, tmp_path):
    a = build_tiny_model(arch, tmp_path / "a", seed=7)
    b = build_tiny_model(arch, tmp_path / "b", seed=7)
    c = build_tiny_model(arch, tmp_path / "c", seed=8)
    assert file_hashes(a) == file_hashes(b)
    assert file_hashes(a)["model.safetensors"] != file_hashes(c)["model.safetensors"]
    config = json.loads((a / "config.json").read_text())
    assert config["model_type"] == arch
    tensors = load_file(str(a / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in tensors.values())
    if arch == "gpt2":  # tied lm_head is not written twice
        assert not any(k.startswith("lm_head") for k in tensors)
    model = load_for_inference(a)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_finetune_is_deterministic_and_trains_everything(tmp_path):
    base = build_tiny_model("bert", tmp_path / "base", seed=0)
    spec = FinetuneSpec("t", task="regression", steps=2, seed=3)
    a = finetune(base, tmp_path / "a", spec)
    b = finetune(base, tmp_path / "b", spec)
    c = finetune(base, tmp_path / "c", FinetuneSpec("t", task="regression", steps=2, seed=4))
    assert file_hashes(a) == file_hashes(b)
    assert file_hashes(a)["model.safetensors"] != file_hashes(c)["model.safetensors"]
    # k = 0: every base tensor was updated, none survives bit-identical
    assert not set(content_keys(a / "model.safetensors")) & set(content_keys(base / "model.safetensors"))
    config = json.loads((a / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["architectures"] == ["BertForSequenceClassification"]


def test_partial_finetune_keeps_frozen_tensors_bit_identical(minilm, minilm_partial):
    base = content_keys(minilm / "model.safetensors")
    tuned = load_file(str(minilm_partial / "model.safetensors"))
    tuned_keys = content_keys(minilm_partial / "model.safetensors")
    shared = {tuned_keys[k] for k in tuned_keys if k in base}
    expected = {
        k
        for k in tuned
        if k.startswith("bert.embeddings.") or any(k.startswith(f"bert.encoder.layer.{i}.") for i in range(3))
    }
    assert len(expected) == 5 + 3 * 16
    assert shared == expected
    # the saved names carry the task model's "bert." prefix, the base's do not
    assert all(base[k].startswith(("embeddings.", "encoder.layer.")) for k in base if tuned_keys.get(k) in shared)
    assert tuned["classifier.weight"].shape == (3, 384)
    for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        assert (minilm_partial / f).read_bytes() == (minilm / f).read_bytes()


def test_adapters_are_trained_and_reference_their_base(adapters):
    for name, (base, adapter) in adapters.items():
        cfg = json.loads((adapter / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == str(base)
        assert cfg["peft_type"] == ("IA3" if "ia3" in name else "LORA")
        # peft writes these from Python sets; sorted means the bytes do not depend on PYTHONHASHSEED
        assert cfg["target_modules"] == sorted(cfg["target_modules"])
        tensors = load_file(str(adapter / "adapter_model.safetensors"))
        if cfg["peft_type"] == "LORA":
            # lora_B starts at zero: nonzero means real optimiser steps happened
            assert any(t.abs().sum() > 0 for k, t in tensors.items() if "lora_B" in k), name
        else:
            assert any(not torch.all(t == 1) for k, t in tensors.items() if "ia3_l" in k), name


def test_modules_to_save_and_head_are_in_the_adapter(adapters):
    _, adapter = adapters["gpt2-lora-cls-mts"]
    keys = set(load_file(str(adapter / "adapter_model.safetensors")))
    assert any(k.endswith("ln_f.weight") for k in keys)
    assert any(k.endswith("score.weight") for k in keys)
    # loaded from the path recorded in the adapter config, with the 3-label head
    model = load_for_inference(adapter)
    with torch.no_grad():
        logits = model(input_ids=torch.arange(3, 13).reshape(2, 5)).logits
    assert logits.shape == (2, 3)


def test_bad_requests_raise_pbkit_errors(tmp_path, minilm):
    with pytest.raises(PbkitError, match="arch 'opt'"):
        build_tiny_model("opt", tmp_path / "x", seed=0)
    with pytest.raises(PbkitError, match="causal LM"):
        finetune(minilm, tmp_path / "y", FinetuneSpec("y", task="lm"))
    with pytest.raises(PbkitError, match="frozen_blocks 7 exceeds"):
        finetune(minilm, tmp_path / "z", FinetuneSpec("z", frozen_blocks=7))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(PbkitError, match="not empty"):
        finetune(minilm, tmp_path / "full", FinetuneSpec("f"))
    with pytest.raises(PbkitError, match="no config.json"):
        train_adapter(tmp_path, tmp_path / "w", AdapterSpec("w"))
    with pytest.raises(PbkitError, match="adapter type"):
        train_adapter(minilm, tmp_path / "v", AdapterSpec("v", type="prefix"))
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_unloadable_base_is_a_pbkit_error(tmp_path):
    base = build_tiny_model("bert", tmp_path / "base", seed=0)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((base / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes((base / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(PbkitError, match="transformers cannot load it"):
        finetune(broken, tmp_path / "out", FinetuneSpec("x"))
    assert not (tmp_path / "out").exists()
