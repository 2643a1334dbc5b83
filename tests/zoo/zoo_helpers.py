"""Shared spec of the small real zoo used by the zoo tests (imported by conftest and tests)."""

from __future__ import annotations

import json

from pbkit.zoo.spec import ZooSpec, parse_spec

SMALL_SPEC = {
    "name": "small",
    "seed": 7,
    "families": [
        {
            "name": "gpt",
            "base": {"tiny": "gpt2"},
            "defaults": {"steps": 2, "batch_size": 2, "seq_len": 16, "task": "lm"},
            "finetunes": [
                {"name": "full", "frozen_blocks": 0},
                {"name": "k2", "frozen_blocks": 2},
                {"name": "cls-k3", "frozen_blocks": 3, "task": "classification", "num_labels": 3},
            ],
            "adapters": [
                {"name": "lora-r4", "type": "lora", "r": 4, "alpha": 8, "target_modules": ["c_attn"]},
                {"name": "ia3", "type": "ia3", "target_modules": ["c_attn", "mlp.c_proj"]},
            ],
        },
        {
            "name": "llama",
            "base": {"tiny": "llama"},
            "defaults": {"steps": 2, "batch_size": 2, "seq_len": 16, "task": "lm"},
            "finetunes": [{"name": "k1-fp16", "frozen_blocks": 1, "dtype": "float16"}],
            "adapters": [
                {
                    "name": "lora-save",
                    "type": "lora",
                    "r": 2,
                    "target_modules": ["q_proj", "v_proj"],
                    "modules_to_save": ["lm_head"],
                }
            ],
        },
    ],
}


def small_spec(**overrides) -> ZooSpec:
    data = json.loads(json.dumps(SMALL_SPEC))
    data.update(overrides)
    return parse_spec(data, where="small.yaml")
