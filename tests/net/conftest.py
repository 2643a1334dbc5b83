"""Fixtures of the network tests: an origin store with a base, two sibling fine-tunes and an
adapter, and real servers on 127.0.0.1 (free ports, stopped at the end of their scope)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for `import net_helpers` under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

from net_helpers import Served  # noqa: E402
from store_helpers import finetune_of, small_model  # noqa: E402

from pbkit.store import Store  # noqa: E402

torch.set_num_threads(1)


def toy(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {f"layer{i}.weight": torch.randn(96, 96, generator=g) for i in range(8)}
    out["embed.weight"] = torch.randn(300, 96, generator=g)
    return out


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    base = small_model(root / "base", toy(0))
    ft = finetune_of(base, root / "ft", ["layer1.weight", "layer4.weight"], seed=1)
    ft2 = finetune_of(base, root / "ft2", ["layer2.weight", "layer5.weight"], seed=2)
    g = torch.Generator().manual_seed(3)
    lora = small_model(
        root / "lora",
        {
            f"base_model.model.layer{i}.lora_{ab}.weight": torch.randn(4, 96, generator=g)
            for i in range(3)
            for ab in "AB"
        },
        filename="adapter_model.safetensors",
    )
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x/y"}))
    other = small_model(root / "other", toy(9))
    return {"base": base, "ft": ft, "ft2": ft2, "lora": lora, "other": other}


@pytest.fixture(scope="session")
def origin_store(sources, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("origin") / "store"
    with Store.open(path) as s:
        s.ingest(sources["base"], name="base")
        s.ingest(sources["ft"], name="ft", base="base")
        s.ingest(sources["ft2"], name="ft2", base="base")
        s.ingest(sources["lora"], name="lora", base="base")
    return path


@pytest.fixture(scope="session")
def origin(origin_store):
    with Served.origin(origin_store) as served:
        yield served
