"""PB ids and file digests.

A PB id is the hex BLAKE3 of a domain-separated preamble binding the id version, dtype and
shape, followed by the tensor's raw bytes:

    b"pbkit/pb/v1\\0" + dtype + b"\\0" + ",".join(shape) + b"\\0" + raw bytes

The tensor's name is not hashed, so renamed keys, tied weights and base tensors copied into an
adapter all get the same id. Fields never contain NUL, so the preamble parses uniquely and
different (dtype, shape) pairs can never collide by shifting bytes between preamble and data.
Whole-file blocks use a different domain (b"pbkit/blob/v1\\0" + bytes), so a file can never share
an id with a tensor. Inputs are hashed from any buffer (bytes, memoryview of an mmap) without
copying; large inputs use BLAKE3's multithreaded mode. See docs/safetensors-reader.md.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from concurrent.futures import Executor, wait
from typing import Protocol, Sequence, Union

import blake3

PB_ID_VERSION = 1
BLOB_ID_VERSION = 1

_PB_DOMAIN = f"pbkit/pb/v{PB_ID_VERSION}\0".encode()
_BLOB_DOMAIN = f"pbkit/blob/v{BLOB_ID_VERSION}\0".encode()

# Below this size the thread pool's start-up costs more than it saves (measured on 2 cores in
# benchmarks/bench_store.py); BLAKE3's docs suggest multithreading pays off above ~128 KiB.
PARALLEL_MIN_BYTES = 1 << 20

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]


def _hasher(size_hint: int) -> blake3.blake3:
    threads = blake3.blake3.AUTO if size_hint >= PARALLEL_MIN_BYTES else 1
    return blake3.blake3(max_threads=threads)


def pb_preamble(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The bytes hashed before a tensor's data (exposed for documentation and tests)."""
    if "\0" in dtype:
        raise ValueError(f"dtype {dtype!r} contains NUL")
    return _PB_DOMAIN + dtype.encode("ascii") + b"\0" + ",".join(str(int(d)) for d in shape).encode() + b"\0"


def pb_id(dtype: str, shape: tuple[int, ...], data: Buffer) -> str:
    """Hex PB id of a tensor's raw bytes bound to its dtype and shape (not its name)."""
    h = _hasher(len(data))
    h.update(pb_preamble(dtype, shape))
    h.update(data)
    return h.hexdigest()


def blob_id(data: Buffer) -> str:
    """Hex id of a whole-file block (config, tokenizer, ...), in its own domain."""
    h = _hasher(len(data))
    h.update(_BLOB_DOMAIN)
    h.update(data)
    return h.hexdigest()


class _Span(Protocol):
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def pb_ids(view: Buffer, tensors: Sequence[_Span], executor: Executor | None = None) -> list[str]:
    """PB ids of many tensors of one file (`view` is the whole file, e.g. an mmap's memoryview).

    Tensors of at least PARALLEL_MIN_BYTES use BLAKE3's own threads one at a time; smaller ones
    are spread over `executor` (threads suffice: blake3 releases the GIL), which on 2 cores hides
    the per-tensor overhead that a single thread pays for models made of many small tensors.
    Same result as `[pb_id(t.dtype, t.shape, view[t.begin:t.end]) for t in tensors]`.
    """
    with memoryview(view) as mv:  # released on return, so the caller can close its mmap

        def one(t: _Span) -> str:
            with mv[t.begin : t.end] as part:
                return pb_id(t.dtype, t.shape, part)

        if executor is None:
            return [one(t) for t in tensors]
        small = [i for i, t in enumerate(tensors) if t.end - t.begin < PARALLEL_MIN_BYTES]
        futures = {i: executor.submit(one, tensors[i]) for i in small}
        try:
            out = ["" if i in futures else one(t) for i, t in enumerate(tensors)]
            for i, fut in futures.items():
                out[i] = fut.result()
            return out
        finally:
            wait(futures.values())  # no thread may still hold a slice when mv is released


class _StreamingId:
    """A BLAKE3 id fed in pieces: a domain preamble, then the block's bytes."""

    def __init__(self, preamble: bytes, size_hint: int) -> None:
        self._h = _hasher(size_hint)
        self._h.update(preamble)
        self.nbytes = 0

    def update(self, chunk: Buffer) -> None:
        self._h.update(chunk)
        self.nbytes += len(chunk)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class StreamingPB(_StreamingId):
    """Incremental PB id: `StreamingPB(dtype, shape)`, then `update(chunk)`s, then `hexdigest()`.

    Gives the same id as `pb_id(dtype, shape, b"".join(chunks))` (for data arriving in pieces,
    e.g. over a network or from a file read in chunks).
    """

    def __init__(self, dtype: str, shape: tuple[int, ...], size_hint: int = 0) -> None:
        super().__init__(pb_preamble(dtype, shape), size_hint)


class StreamingBlob(_StreamingId):
    """Incremental form of `blob_id`."""

    def __init__(self, size_hint: int = 0) -> None:
        super().__init__(_BLOB_DOMAIN, size_hint)


def blob_id_file(path: str | os.PathLike[str]) -> str:
    """`blob_id` of a file's contents, read through mmap (no copy into Python memory)."""
    h = _hasher(os.path.getsize(path))
    h.update(_BLOB_DOMAIN)
    if os.path.getsize(path):
        h.update_mmap(os.fspath(path))
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (what recipes record and assembly checks against)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:  # an empty file cannot be mmapped
            return hashlib.sha256(b"").hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return hashlib.sha256(m).hexdigest()


def buffer_sha256(data: Buffer) -> str:
    return hashlib.sha256(data).hexdigest()
