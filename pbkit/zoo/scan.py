"""What a dedup report looks at: the files of a set of models, with their tensors' PB ids, and
access to their bytes, read either from a zoo directory or from a store.

Both sources give the same `ScannedModel`s for the same files (the store rebuilds file bytes from
its header and tensor objects, which is bit-exact by construction), so a report over a zoo and a
report over the store it was ingested into agree.
"""

from __future__ import annotations

import io
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pbkit.errors import PbkitError
from pbkit.model.digest import blob_id, blob_id_file, file_sha256, pb_id
from pbkit.model.safetensors_layout import is_safetensors, read_layout
from pbkit.model.sources import list_model_files
from pbkit.store.recipe import TensorRef


class ScanError(PbkitError, ValueError):
    """A zoo directory or store cannot be scanned (missing, empty, unreadable)."""


@dataclass(frozen=True)
class ScannedFile:
    """One file; a safetensors file has a header block and tensors, any other file is a blob."""

    path: str
    size: int
    sha256: str
    header_id: str | None = None
    header_bytes: int = 0
    tensors: tuple[TensorRef, ...] = ()
    blob_id: str | None = None


@dataclass(frozen=True)
class ScannedModel:
    name: str
    files: tuple[ScannedFile, ...]
    family: str = ""
    role: str = ""

    @property
    def logical_bytes(self) -> int:
        return sum(f.size for f in self.files)


class ByteSource(Protocol):
    """Reads the bytes behind scanned models."""

    def open_file(self, model: str, path: str) -> io.RawIOBase | io.BufferedIOBase: ...

    def tensor_bytes(self, pb: str) -> bytes: ...


# ---------------------------------------------------------------- zoo directory
@dataclass
class DirSource:
    """Bytes of model directories on disk."""

    roots: dict[str, Path]
    _tensors: dict[str, tuple[Path, int, int]] = field(default_factory=dict)

    def open_file(self, model: str, path: str) -> io.BufferedReader:
        return open(self.roots[model] / path, "rb")

    def tensor_bytes(self, pb: str) -> bytes:
        path, begin, end = self._tensors[pb]
        with open(path, "rb") as fh:
            fh.seek(begin)
            return fh.read(end - begin)


def _scan_file(root: Path, rel: str, source: DirSource) -> ScannedFile:
    full = root / rel
    size = full.stat().st_size
    sha = file_sha256(full)
    if not is_safetensors(rel):
        return ScannedFile(rel, size, sha, blob_id=blob_id_file(full))
    layout = read_layout(full)
    tensors: list[TensorRef] = []
    with open(full, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        try:
            view = memoryview(mm) if mm is not None else memoryview(b"")
            for t in layout.tensors:
                pid = pb_id(t.dtype, t.shape, view[t.begin : t.end])
                tensors.append(TensorRef(t.name, t.dtype, t.shape, pid, t.nbytes))
                source._tensors.setdefault(pid, (full, t.begin, t.end))
            view.release()
        finally:
            if mm is not None:
                mm.close()
    return ScannedFile(
        rel,
        size,
        sha,
        header_id=blob_id(layout.header),
        header_bytes=len(layout.header),
        tensors=tuple(tensors),
    )


def scan_dirs(
    models: dict[str, Path], meta: dict[str, dict[str, Any]] | None = None
) -> tuple[list[ScannedModel], DirSource]:
    """Scan model directories (name -> path), in the order given."""
    source = DirSource(roots=dict(models))
    out: list[ScannedModel] = []
    for name, root in models.items():
        files = tuple(_scan_file(root, rel, source) for rel in list_model_files(root))
        info = (meta or {}).get(name, {})
        out.append(ScannedModel(name, files, family=info.get("family", ""), role=info.get("role", "")))
    return out, source


def scan_zoo(zoo_dir: str | os.PathLike[str]) -> tuple[list[ScannedModel], DirSource]:
    """Every model directory directly under `zoo_dir` (hidden entries skipped), in build order
    when the zoo has markers (pbkit.zoo.builder), else by name."""
    from pbkit.zoo.builder import read_manifest

    zoo = Path(zoo_dir)
    if not zoo.is_dir():
        raise ScanError(f"{zoo}: zoo directory does not exist")
    dirs = sorted(p for p in zoo.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise ScanError(f"{zoo}: no model directories in the zoo")
    meta = read_manifest(zoo)
    order = _build_order(zoo, [d.name for d in dirs])
    return scan_dirs({n: zoo / n for n in order}, meta)


def _build_order(zoo: Path, names: list[str]) -> list[str]:
    import json

    try:
        manifest = json.loads((zoo / "zoo.json").read_text())
        listed = [m["name"] for m in manifest.get("models", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        listed = []
    present = set(names)
    ordered = [n for n in listed if n in present]
    return ordered + [n for n in names if n not in set(ordered)]


# ---------------------------------------------------------------- store
class _ConcatReader(io.RawIOBase):
    """A read-only stream over a list of object files, as one file (what assembly would write)."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths
        self._i = 0
        self._fh: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._i < len(self._paths):
            if self._fh is None:
                self._fh = open(self._paths[self._i], "rb")
            n = self._fh.readinto(b)
            if n:
                return n
            self._fh.close()
            self._fh = None
            self._i += 1
        return 0

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()


@dataclass
class StoreSource:
    """Bytes of stored models, read from the store's content-addressed objects."""

    store: Any
    recipes: dict[str, Any]

    def open_file(self, model: str, path: str) -> io.BufferedIOBase:
        f = next(f for f in self.recipes[model].files if f.path == path)
        if any(t.delta for t in f.tensors):  # delta-stored tensors are rebuilt (and verified) in memory
            return io.BytesIO(
                self.store.objects.read(f.header_pb) + b"".join(self.tensor_bytes(t.pb) for t in f.tensors)
            )
        return io.BufferedReader(_ConcatReader([self.store.objects.path(b) for b in f.block_ids()]))

    def tensor_bytes(self, pb: str) -> bytes:
        """A tensor PB's bytes; one the store keeps as a delta chain is rebuilt and verified."""
        from pbkit.store.assemble import StoreBlocks, rebuild_tensor

        for r in self.recipes.values():
            info = r.logical_blocks().get(pb) if r.has_deltas else None
            if info is not None and info.chain:
                return bytes(rebuild_tensor(StoreBlocks(self.store.objects), info))
        return self.store.objects.read(pb)


def scan_store(store: Any, names: list[str] | None = None) -> tuple[list[ScannedModel], StoreSource]:
    """The models of a store (all, or `names`) from their recipes; no object is read here."""
    names = list(store.list_models()) if names is None else names
    if not names:
        raise ScanError(f"{getattr(store, 'root', 'store')}: the store holds no models")
    recipes = {n: store.recipe(n) for n in names}
    out: list[ScannedModel] = []
    for n in names:
        r = recipes[n]
        files = []
        for f in r.files:
            if f.kind == "safetensors":
                tensors = tuple(TensorRef(t.name, t.dtype, tuple(t.shape), t.pb, t.nbytes) for t in f.tensors)
                files.append(
                    ScannedFile(
                        f.path,
                        f.size,
                        f.sha256,
                        header_id=f.header_pb,
                        header_bytes=f.size - sum(t.nbytes for t in tensors),
                        tensors=tensors,
                    )
                )
            else:
                files.append(ScannedFile(f.path, f.size, f.sha256, blob_id=f.blob_pb))
        family = r.base.name if r.base is not None else r.name
        out.append(ScannedModel(n, tuple(files), family=family, role=r.kind))
    return out, StoreSource(store, recipes)
