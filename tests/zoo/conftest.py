"""Fixtures for the zoo tests: a hand-made tiny zoo whose dedup figures are known by
construction, and a small zoo built for real (tiny GPT-2 and Llama families, a few steps)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # 2 cores shared with other work
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pbkit.store import Store  # noqa: E402
from pbkit.zoo.builder import build_zoo  # noqa: E402
from pbkit.zoo.spec import parse_spec  # noqa: E402

SMALL_SPEC = {
    "name": "small",
    "seed": 7,
    "families": [
        {
            "name": "gpt",
            "base": {"tiny": "gpt2"},
            "defaults": {"steps": 2, "batch_size": 2, "seq_len": 16, "task": "lm"},
            "task_models": [
                {"name": "full", "frozen_layers": 0},
                {"name": "k2", "frozen_layers": 2},
                {"name": "cls-k3", "frozen_layers": 3, "task": "classification", "num_labels": 3},
            ],
            "adapters": [
                {"name": "lora-r4", "peft_type": "lora", "r": 4, "alpha": 8, "target_modules": ["c_attn"]},
                {"name": "ia3", "peft_type": "ia3", "target_modules": ["c_attn", "mlp.c_proj"]},
            ],
        },
        {
            "name": "llama",
            "base": {"tiny": "llama"},
            "defaults": {"steps": 2, "batch_size": 2, "seq_len": 16, "task": "lm"},
            "task_models": [{"name": "k1-fp16", "frozen_layers": 1, "dtype": "float16"}],
            "adapters": [
                {
                    "name": "lora-save",
                    "peft_type": "lora",
                    "r": 2,
                    "target_modules": ["q_proj", "v_proj"],
                    "modules_to_save": ["lm_head"],
                }
            ],
        },
    ],
}


def small_spec(**overrides):
    data = json.loads(json.dumps(SMALL_SPEC))
    data.update(overrides)
    return parse_spec(data, where="small.yaml")


@pytest.fixture(scope="session")
def built_zoo(tmp_path_factory):
    """(zoo dir, store dir, build result) of SMALL_SPEC, built once per session."""
    root = tmp_path_factory.mktemp("built")
    with Store.open(root / "store") as store:
        result = build_zoo(small_spec(), root / "zoo", store)
    return root / "zoo", root / "store", result


@pytest.fixture
def built_copy(built_zoo, tmp_path):
    """A private copy of the built zoo and its store, for tests that change them."""
    zoo, store, _ = built_zoo
    shutil.copytree(zoo, tmp_path / "zoo", symlinks=True)
    shutil.copytree(store, tmp_path / "store", symlinks=True)
    return tmp_path / "zoo", tmp_path / "store"
