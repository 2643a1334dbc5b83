"""Helpers shared by the store tests (imported as `store_helpers` through pytest's `pythonpath` in pyproject.toml)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from pbkit.cli import main as cli_main
from pbkit.store import Store

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def sha256_tree(root: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under root."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def object_files(store_dir: Path) -> set[str]:
    return {p.name for p in (Path(store_dir) / "objects").rglob("*") if p.is_file()}


def store_state(store_dir: Path) -> tuple[frozenset, tuple]:
    """What must not change when an ingest is refused: the object files and the models."""
    with Store.open(store_dir) as s:
        models = tuple((m.name, m.recipe_id) for m in s.index.models())
    return frozenset(object_files(store_dir)), models


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `pbkit ARGS` in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def save_st(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def small_model(
    root: Path, tensors: dict[str, torch.Tensor], config: dict | None = None, filename="model.safetensors"
) -> Path:
    """A model directory: config.json and one safetensors file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config or {"model_type": "toy"}))
    save_st(root / filename, tensors, metadata={"format": "pt"})
    return root


def toy_tensors(seed: int = 0, n: int = 4, dim: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {f"layer{i}.weight": torch.randn(dim, dim, generator=g) for i in range(n)}
    out["embed.weight"] = torch.randn(100, dim, generator=g)
    return out


def finetune_of(src: Path, dst: Path, change: list[str], seed: int = 1) -> Path:
    """Copy a single-file safetensors model and perturb some tensors (a partial fine-tune)."""
    from safetensors.torch import load_file

    shutil.copytree(src, dst)
    sd = load_file(str(src / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    for k in change:
        sd[k] = sd[k] + 0.01 * torch.randn(sd[k].shape, generator=g).to(sd[k].dtype)
    os.unlink(dst / "model.safetensors")
    save_st(dst / "model.safetensors", sd, metadata={"format": "pt"})
    return dst
