"""Checkpoint files: arrays as safetensors, everything else as JSON; loading never unpickles.

A run directory holds two such pairs: `policy.safetensors` + `policy.json` (the best actor's
weights and the config: all that evaluation needs) and `checkpoint.safetensors` +
`checkpoint.json` (the whole run for `--resume`: weights, optimiser moments, replay buffers, the
ESN as arrays; config, counters, histories, RNG states as plain data). A nested state (dicts, lists, scalars, numpy arrays, torch tensors) is split by
`save_state`: each array goes to the safetensors file under its path in the tree and is replaced
by `{"__array__": key}` in the JSON; dicts with non-string keys (torch optimiser states) are
written as `{"__items__": [[key, value], ...]}` so that keys keep their type. A checkpoint from
elsewhere can therefore hold data, never code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from learning.errors import CheckpointError
from pbkit.common.fs import atomic_write_bytes, atomic_write_text

RUN = "checkpoint"  # the one place these file stems are written
POLICY = "policy"


def _split(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        arrays[path] = np.ascontiguousarray(value)
        return {"__array__": path}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _split(v, f"{path}.{k}", arrays) for k, v in value.items()}
        return {"__items__": [[k, _split(v, f"{path}.{k}", arrays)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_split(v, f"{path}.{i}", arrays) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} at {path}")


def _join(value: Any, arrays: dict[str, np.ndarray], where: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            key = value["__array__"]
            if key not in arrays:
                raise CheckpointError(f"{where}: array {key!r} is missing from the .safetensors file")
            return arrays[key]
        if set(value) == {"__items__"}:
            return {k: _join(v, arrays, where) for k, v in value["__items__"]}
        return {k: _join(v, arrays, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, arrays, where) for v in value]
    return value


def run_files(path: str | os.PathLike[str], stem: str) -> tuple[Path, Path]:
    """(weights, meta) files of `stem` in a run directory (or next to a given checkpoint file)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.parent
    return p / f"{stem}.safetensors", p / f"{stem}.json"


def save_state(directory: str | os.PathLike[str], state: dict[str, Any], stem: str) -> Path:
    """Write `state` as `stem`.safetensors + `stem`.json, atomically (temporary files, then
    renames; the JSON last)."""
    weights, meta = run_files(directory, stem)
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, "s", arrays)
    text = json.dumps(tree)  # fails (TypeError) before anything is written
    atomic_write_bytes(weights, save(arrays))  # the one write-then-rename, umask modes
    atomic_write_text(meta, text)
    return meta.parent


def load_state(path: str | os.PathLike[str], stem: str) -> dict[str, Any]:
    """The state saved by `save_state`; arrays come back as numpy arrays.

    Raises CheckpointError (one line naming the path) when the files are missing or unreadable.
    """
    weights, meta = run_files(path, stem)
    if Path(path).exists() and not Path(path).is_dir():
        raise CheckpointError(
            f"{path}: not a checkpoint directory (a run directory holds {meta.name} and {weights.name})"
        )
    if not meta.exists() or not weights.exists():
        missing = meta if not meta.exists() else weights
        raise CheckpointError(f"{missing}: no checkpoint here (expected {meta.name} and {weights.name})")
    try:
        tree = json.loads(meta.read_text())
        arrays = load_file(str(weights))
    except (OSError, ValueError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{meta.parent}: cannot read the checkpoint ({first})") from None
    state = _join(tree, arrays, meta)
    if not isinstance(state, dict):
        raise CheckpointError(f"{meta}: not a checkpoint")
    return state


def to_torch(state: Any) -> Any:
    """Arrays of a loaded module/optimiser state as torch tensors (for `load_state_dict`)."""
    if isinstance(state, np.ndarray):
        return torch.from_numpy(state.copy())
    if isinstance(state, dict):
        return {k: to_torch(v) for k, v in state.items()}
    if isinstance(state, list):
        return [to_torch(v) for v in state]
    return state
