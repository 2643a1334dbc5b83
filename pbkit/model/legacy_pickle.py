"""Read a legacy `pytorch_model.bin` without ever executing code from it.

The only loader used is `torch.load(path, map_location="cpu", weights_only=True)`, whose restricted
unpickler accepts tensors, storages and plain containers and refuses every other global (so an
`os.system` reduce or a class instance raises instead of running). The result must be a flat
state dict (str -> Tensor); anything else is refused too.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from pbkit.errors import PbkitError
from pbkit.model.dtypes import TORCH_TO_ST

# torch dtype -> safetensors code (pbkit.model.dtypes), for the dtypes this torch has.
TORCH_TO_ST_DTYPE: dict[torch.dtype, str] = {
    getattr(torch, name): st for name, st in TORCH_TO_ST.items() if hasattr(torch, name)
}


class LegacyPickleError(PbkitError, ValueError):
    """A pickle checkpoint is refused (arbitrary objects) or unreadable; one line naming the file."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:  # the refused global is the useful part of torch's long message
        return f"unsupported global {m.group(1)}"
    for line in text.splitlines():
        # torch's message starts with a generic preamble; the useful line names the global.
        if "Unsupported" in line or "unsupported" in line:
            return line.strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def load_state_dict_safely(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a `pytorch_model.bin`, loaded with `weights_only=True` (never executes code)."""
    path = Path(path)
    # mmap only works for the zip-based format (torch >= 1.6); older files are read normally.
    use_mmap = zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; our error says more
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        raise LegacyPickleError(
            f"{path}: refused, the pickle holds objects other than tensors ({_first_line(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise LegacyPickleError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise LegacyPickleError(f"{path}: not a state dict (top-level object is {type(obj).__name__})")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise LegacyPickleError(
                f"{path}: not a flat state dict (entry {key!r} is {type(value).__name__}, not a tensor)"
            )
        if value.dtype not in TORCH_TO_ST_DTYPE:
            raise LegacyPickleError(f"{path}: tensor {key!r} has unsupported dtype {value.dtype}")
    return dict(obj)


def tensor_raw(t: torch.Tensor) -> tuple[str, tuple[int, ...], memoryview]:
    """(safetensors dtype, shape, raw little-endian bytes) of a tensor, as safetensors stores it."""
    dtype = TORCH_TO_ST_DTYPE[t.dtype]
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else memoryview(b"")
    return dtype, tuple(t.shape), memoryview(raw).cast("B")
