"""Strict reader of a safetensors file's layout: the verbatim header bytes and the tensor table.

Only the header is read (a file may be many GB); tensor bytes are addressed by absolute file
offsets so callers can hash or copy them straight from an mmap. The checks follow the format
as safetensors 0.8 validates it (little-endian u64 header length, a JSON object header, data
offsets that tile the data section exactly) plus a few stricter ones (duplicate keys, trailing
bytes), because a store must be able to rebuild the file bit for bit from header + tensors.
See docs/safetensors-reader.md.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbkit.errors import PbkitError
from pbkit.model.dtypes import DTYPE_BITS, DTYPE_SIZES  # noqa: F401 (re-exported: where readers look)

MAX_HEADER_BYTES = 100_000_000
_LEN_BYTES = 8


class SafetensorsFormatError(PbkitError, ValueError):
    """A safetensors file is malformed; the message is "<path>: <problem>"."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors file; `begin`/`end` are ABSOLUTE file offsets of its bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsLayout:
    """The layout of one safetensors file.

    `header` is file[:data_start] verbatim (8-byte length + JSON text incl. any space padding),
    so `header + b"".join(tensor bytes in offset order) == file bytes`.
    """

    path: Path
    header: bytes
    data_start: int
    tensors: tuple[TensorEntry, ...]  # sorted by (begin, end)
    metadata: dict[str, str] | None
    file_size: int

    @property
    def data_bytes(self) -> int:
        return self.file_size - self.data_start


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    """Whether the file is meant to be safetensors (by its name, as transformers decides too)."""
    return str(path).endswith(".safetensors")


def tensor_nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor of `dtype` and `shape`; ValueError if unknown or not whole bytes."""
    bits = DTYPE_BITS[dtype] * math.prod(shape)
    if bits % 8:
        raise ValueError(f"{dtype} tensor of shape {list(shape)} does not fill whole bytes")
    return bits // 8


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _read_header_text(f: Any, n: int, fail: Any) -> bytes:
    """The n header bytes, read in 1 MiB pieces so that a file claiming a huge header is refused
    at its first NUL byte (never valid in JSON text: a binary file, or a hole), not after
    reading up to 100 MB of it."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        chunk = f.read(min(n - got, 1 << 20))
        if not chunk:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            raise fail(f"header has a NUL byte at offset {_LEN_BYTES + got + nul} (not a safetensors file)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_layout(path: str | os.PathLike[str]) -> SafetensorsLayout:
    """Read and validate the header of a safetensors file without loading any tensor."""
    path = Path(path)

    def fail(problem: str) -> SafetensorsFormatError:
        return SafetensorsFormatError(f"{path}: {problem}")

    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            prefix = f.read(_LEN_BYTES)
            if len(prefix) < _LEN_BYTES:
                raise fail(
                    f"not a safetensors file, or a truncated one: {file_size} bytes, shorter than the 8-byte header length"
                )
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER_BYTES:
                raise fail(f"not a safetensors file: header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
            if _LEN_BYTES + n > file_size:
                raise fail(
                    f"not a safetensors file, or a truncated one: header length {n} runs past the end of the file ({file_size} bytes)"
                )
            text = _read_header_text(f, n, fail)
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from exc
    if len(text) != n:  # file shrank under us
        raise fail(f"truncated safetensors file (header of {n} bytes, read {len(text)})")

    try:
        header_obj = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise fail("header is not valid UTF-8") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError; so is a duplicate key
        raise fail(f"header is not valid JSON ({str(exc).splitlines()[0]})") from None
    except RecursionError:  # json's C scanner recurses per nesting level
        raise fail("header is not valid JSON (nested too deeply)") from None
    if not isinstance(header_obj, dict):
        raise fail(f"header is not a JSON object (got {type(header_obj).__name__})")

    metadata = header_obj.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise fail("__metadata__ is not a map of strings to strings")

    data_start = _LEN_BYTES + n
    entries: list[TensorEntry] = []
    for name, info in header_obj.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise fail(f"tensor {name!r}: entry must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise fail(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise fail(f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) and o >= 0 for o in offsets)
            or offsets[1] < offsets[0]
        ):
            raise fail(f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end] with 0 <= begin <= end")
        try:
            expected = tensor_nbytes(dtype, tuple(shape))
        except ValueError as exc:
            raise fail(f"tensor {name!r}: {exc}") from None
        if offsets[1] - offsets[0] != expected:
            raise fail(
                f"tensor {name!r}: data_offsets {offsets} span {offsets[1] - offsets[0]} bytes, "
                f"but {dtype} {shape} needs {expected}"
            )
        entries.append(TensorEntry(name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1]))

    # Data must tile [data_start, file_size) exactly, in offset order (what safetensors checks,
    # and what makes header + tensors == file).
    entries.sort(key=lambda e: (e.begin, e.end))
    cursor = data_start
    for e in entries:
        if e.begin < cursor:
            raise fail(f"tensor {e.name!r}: data offsets overlap the previous tensor")
        if e.begin > cursor:
            raise fail(f"tensor {e.name!r}: gap of {e.begin - cursor} bytes before its data (offsets not contiguous)")
        cursor = e.end
    if cursor > file_size:
        raise fail(f"truncated safetensors file: data ends at byte {cursor}, file has {file_size}")
    if cursor < file_size:
        raise fail(f"{file_size - cursor} trailing bytes after the last tensor's data")

    return SafetensorsLayout(
        path=path,
        header=prefix + text,
        data_start=data_start,
        tensors=tuple(entries),
        metadata=metadata,
        file_size=file_size,
    )
