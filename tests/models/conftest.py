"""Fixtures for the end-to-end model tests: tiny real models, fine-tunes and adapters, built
once per session (they are deterministic by seed, so sharing them between tests is safe)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pbkit.zoo.bundled import bundled_model_dir
from pbkit.zoo.finetune import AdapterSpec, FinetuneSpec, build_tiny_model, finetune, train_adapter

# 2 cores shared with other work; the hub is never reachable here.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def minilm() -> Path:
    return bundled_model_dir()


@pytest.fixture(scope="session")
def tiny_gpt2(models_dir) -> Path:
    return build_tiny_model("gpt2", models_dir / "tiny-gpt2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama(models_dir) -> Path:
    return build_tiny_model("llama", models_dir / "tiny-llama", seed=0)


@pytest.fixture(scope="session")
def minilm_partial(models_dir, minilm) -> Path:
    """MiniLM fine-tuned for 3-class classification with the bottom 3 of 6 blocks frozen."""
    spec = FinetuneSpec("minilm-k3", num_labels=3, frozen_blocks=3, steps=2, seed=1)
    return finetune(minilm, models_dir / "minilm-k3", spec)


# Adapters on the tiny decoders: LoRA (causal LM), IA3, LoRA with modules_to_save, and a LoRA that
# targets the input embedding (peft then saves the base embedding matrix inside the adapter).
ADAPTERS = {
    "gpt2-lora": ("tiny_gpt2", AdapterSpec("gpt2-lora", task="lm", r=4, seed=2)),
    "gpt2-ia3": ("tiny_gpt2", AdapterSpec("gpt2-ia3", type="ia3", task="lm", seed=3)),
    "gpt2-lora-cls-mts": (
        "tiny_gpt2",
        AdapterSpec("gpt2-lora-cls-mts", task="classification", num_labels=3, modules_to_save=["ln_f"], seed=4),
    ),
    "llama-lora": ("tiny_llama", AdapterSpec("llama-lora", task="lm", r=8, seed=5)),
    "llama-lora-emb": (
        "tiny_llama",
        AdapterSpec("llama-lora-emb", task="lm", r=4, target_modules=["q_proj", "v_proj", "embed_tokens"], seed=6),
    ),
    "minilm-lora-reg": (
        "minilm",
        AdapterSpec(
            "minilm-lora-reg", task="regression", r=4, target_modules=["query", "key", "value"], steps=2, seed=7
        ),
    ),
}
# The name each base fixture is ingested under in the store tests.
BASE_NAMES = {"tiny_gpt2": "tiny-gpt2", "tiny_llama": "tiny-llama", "minilm": "minilm"}


@pytest.fixture(scope="session")
def adapters(request, models_dir) -> dict[str, tuple[Path, Path]]:
    """name -> (base dir, adapter dir), each trained for 3 steps."""
    out = {}
    for name, (base_fixture, spec) in ADAPTERS.items():
        base = request.getfixturevalue(base_fixture)
        out[name] = (base, train_adapter(base, models_dir / name, spec))
    return out
