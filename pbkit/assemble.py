"""Rebuild a model directory bit-exactly from blocks, and "which blocks do I still need".

Blocks come from a `BlockSource`: the store's object directory, or a directory of received
blocks (files named `<id>` or `<id>.pb`, in any order, as a broadcast delivers them). Every
block is re-hashed when read (PB id for tensors, blob id for headers and whole files) and every
rebuilt file is checked against the recipe's size and SHA-256. Files are written into a
temporary directory beside `out_dir`, fsynced, and the directory is renamed into place only when
every file is complete and verified; on any missing or corrupt block nothing is left behind and
the error lists each unavailable block with its id, bytes and the tensors it holds.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from pbkit.digest import blob_id, pb_id
from pbkit.errors import PbkitError
from pbkit.objects import ObjectDir, fsync_dir, is_id
from pbkit.recipe import BlockInfo, Recipe

ProgressFn = Callable[[str, int, int], None]
_SMALL = 1 << 20  # below this a block is read into memory; above, mmapped


class AssemblyError(PbkitError):
    """A model cannot be assembled (blocks missing or corrupt, output dir in the way)."""

    def __init__(self, message: str, unavailable: list["UnavailableBlock"] | None = None) -> None:
        super().__init__(message)
        self.unavailable = unavailable or []


@dataclass(frozen=True)
class UnavailableBlock:
    id: str
    nbytes: int
    reason: str  # "missing" | "corrupt"
    tensors: tuple[str, ...]

    def describe(self) -> str:
        held = ", ".join(self.tensors[:3]) + (f", +{len(self.tensors) - 3} more" if len(self.tensors) > 3 else "")
        return f"{self.id[:16]} {self.reason} ({self.nbytes} bytes: {held})"


class BlockSource(Protocol):
    def has(self, block_id: str) -> bool: ...

    def read(self, block_id: str) -> "Any":  # a buffer (bytes or mmap) or None if absent
        ...

    def describe(self) -> str: ...


class _Mapped:
    """An mmap that is closed when the assembly is done with it."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "rb")
        self.m = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)

    def close(self) -> None:
        self.m.close()
        self.f.close()


def _read_path(path: str) -> Any:
    size = os.path.getsize(path)
    if size < _SMALL:
        with open(path, "rb") as f:
            return f.read()
    return _Mapped(path)


class StoreBlocks:
    """Blocks from the store's object directory."""

    def __init__(self, objects: ObjectDir) -> None:
        self.objects = objects

    def has(self, block_id: str) -> bool:
        return self.objects.exists(block_id)

    def read(self, block_id: str) -> Any:
        try:
            return _read_path(str(self.objects.path(block_id)))
        except FileNotFoundError:
            return None

    def describe(self) -> str:
        return f"store objects {self.objects.root}"


class DirBlocks:
    """A directory of received blocks, `<id>` or `<id>.pb` files, arrived in any order."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise AssemblyError(f"{self.path}: block directory does not exist")
        self.files: dict[str, str] = {}
        for entry in os.scandir(self.path):
            stem = entry.name[:-3] if entry.name.endswith(".pb") else entry.name
            if is_id(stem) and entry.is_file():
                self.files.setdefault(stem, entry.path)

    def has(self, block_id: str) -> bool:
        return block_id in self.files

    def read(self, block_id: str) -> Any:
        p = self.files.get(block_id)
        return None if p is None else _read_path(p)

    def ids(self) -> set[str]:
        return set(self.files)

    def describe(self) -> str:
        return f"block directory {self.path}"


def block_digest(info: BlockInfo, data: Any) -> str:
    """Re-hash a block the way its id was made."""
    if info.kind == "tensor":
        assert info.dtype is not None and info.shape is not None
        return pb_id(info.dtype, info.shape, data)
    return blob_id(data)


def block_ok(info: BlockInfo, data: Any) -> bool:
    return len(data) == info.nbytes and block_digest(info, data) == info.id


def check_block(source: "BlockSource", info: BlockInfo) -> bool | None:
    """Re-hash one block of a source: True if sound, False if corrupt, None if absent."""
    data = source.read(info.id)
    if data is None:
        return None
    try:
        return block_ok(info, data.m if isinstance(data, _Mapped) else data)
    finally:
        if isinstance(data, _Mapped):
            data.close()


@dataclass
class AssembleReport:
    name: str
    out_dir: Path
    files: int
    bytes: int
    blocks: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out_dir"] = str(self.out_dir)
        return d


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink() or any(out_dir.iterdir()):
            raise AssemblyError(f"{out_dir}: already exists and is not an empty directory; choose another --out")


def _unavailable_error(recipe: Recipe, bad: list[UnavailableBlock], where: str) -> AssemblyError:
    n_missing = sum(b.reason == "missing" for b in bad)
    n_corrupt = len(bad) - n_missing
    total = sum(b.nbytes for b in bad)
    shown = "; ".join(b.describe() for b in bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
    return AssemblyError(
        f"cannot assemble {recipe.name!r} from {where}: {len(bad)} blocks unavailable "
        f"({n_missing} missing, {n_corrupt} corrupt, {total} bytes): {shown}",
        bad,
    )


def assemble(
    recipe: Recipe,
    out_dir: str | os.PathLike[str],
    source: BlockSource,
    progress: ProgressFn | None = None,
    durable: bool = True,
    verify_blocks: bool | None = None,
) -> AssembleReport:
    """Write the model's files into `out_dir` (must not exist or be empty), bit-exact and verified.

    Every file's size and SHA-256 are checked against the recipe: that alone proves the output
    is the original, so blocks from the store are not re-hashed one by one unless a file fails
    (then its blocks are, to name the corrupt ones). Blocks from a received-blocks directory are
    each re-hashed as they are read (`verify_blocks`, default: True except for the store).
    """
    t0 = time.perf_counter()
    if verify_blocks is None:
        verify_blocks = not isinstance(source, StoreBlocks)
    out_dir = Path(os.path.abspath(out_dir))
    _check_out_dir(out_dir)
    blocks = recipe.blocks()
    bad: dict[str, UnavailableBlock] = {
        b.id: UnavailableBlock(b.id, b.nbytes, "missing", b.tensors) for b in blocks.values() if not source.has(b.id)
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.pbkit-tmp-", dir=out_dir.parent))
    verified: set[str] = set()
    total = recipe.logical_bytes
    done = 0
    written: list[Path] = []

    def verify_once(bid: str, buf: Any) -> bool:
        """Re-hash a block once; record it as corrupt if it does not match its id."""
        if bid in verified:
            return True
        info = blocks[bid]
        if block_ok(info, buf):
            verified.add(bid)
            return True
        bad[bid] = UnavailableBlock(bid, info.nbytes, "corrupt", info.tensors)
        return False

    def each_block(ids: list[str]):
        """(id, buffer) of each available block; missing ones are recorded in `bad`."""
        for bid in ids:
            if bid in bad:
                yield bid, None
                continue
            data = source.read(bid)
            if data is None:
                info = blocks[bid]
                bad[bid] = UnavailableBlock(bid, info.nbytes, "missing", info.tensors)
                yield bid, None
                continue
            try:
                yield bid, (data.m if isinstance(data, _Mapped) else data)
            finally:
                if isinstance(data, _Mapped):
                    data.close()

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbkit-sha") as pool:
            for f in recipe.files:
                if bad:
                    # Something is unavailable: write nothing more, only check the remaining
                    # blocks so that the error lists every missing and corrupt one.
                    for bid, buf in each_block(f.block_ids()):
                        if buf is not None:
                            verify_once(bid, buf)
                    continue
                target = tmp.joinpath(*f.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                h = hashlib.sha256()
                size = 0
                ok = True
                try:
                    for bid, buf in each_block(f.block_ids()):
                        if buf is None or (verify_blocks and not verify_once(bid, buf)):
                            ok = False
                            continue
                        if ok:
                            # SHA-256 runs in the helper thread while the block is written.
                            fut = pool.submit(h.update, buf)
                            _write_all(fd, memoryview(buf))
                            fut.result()  # before the block's mmap is closed
                            size += len(buf)
                        done += blocks[bid].nbytes
                        if progress is not None:
                            progress("assemble", min(done, total), total)
                finally:
                    os.close(fd)
                if ok and (size != f.size or h.hexdigest() != f.sha256):
                    # Find the culprit blocks; if every block is sound the recipe itself is wrong.
                    for bid, buf in each_block(f.block_ids()):
                        if buf is not None:
                            verify_once(bid, buf)
                    if not bad:
                        raise AssemblyError(
                            f"cannot assemble {recipe.name!r}: rebuilt {f.path} does not match the recipe "
                            f"(size {size} vs {f.size}, or SHA-256 differs) although every block verifies"
                        )
                written.append(target)
        if bad:
            raise _unavailable_error(recipe, list(bad.values()), source.describe())
        if durable:  # parallel fsyncs let the file system group its journal commits
            with ThreadPoolExecutor(max_workers=16) as sync_pool:
                list(sync_pool.map(_fsync_file, written))
                list(sync_pool.map(fsync_dir, sorted({p.parent for p in written} | {tmp})))
        try:
            if out_dir.is_dir():
                out_dir.rmdir()  # empty (checked above); rename needs it gone on some systems
            os.rename(tmp, out_dir)
        except OSError as exc:  # something appeared at out_dir meanwhile
            raise AssemblyError(f"{out_dir}: cannot put the assembled model in place ({exc.strerror})") from None
        if durable:
            fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return AssembleReport(
        name=recipe.name,
        out_dir=out_dir,
        files=len(recipe.files),
        bytes=total,
        blocks=len(blocks),
        seconds=time.perf_counter() - t0,
    )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, mv: memoryview) -> None:
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


@dataclass
class NeedReport:
    """What a device holding `have` still needs for a model."""

    model: str
    needed: list[BlockInfo]
    needed_bytes: int
    have_bytes: int  # bytes of the model's blocks already held
    total_blocks: int
    total_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "needed_blocks": len(self.needed),
            "needed_bytes": self.needed_bytes,
            "have_bytes": self.have_bytes,
            "total_blocks": self.total_blocks,
            "total_bytes": self.total_bytes,
            "needed": [
                {
                    "id": b.id,
                    "bytes": b.nbytes,
                    "kind": b.kind,
                    "dtype": b.dtype,
                    "shape": None if b.shape is None else list(b.shape),
                    "tensors": list(b.tensors),
                }
                for b in self.needed
            ],
            **self.extra,
        }


def need(recipe: Recipe, have: Iterable[str]) -> NeedReport:
    """Exactly which blocks (and bytes) of `recipe` are not in `have`."""
    have = set(have)
    blocks = recipe.blocks()
    needed = [b for b in blocks.values() if b.id not in have]
    total = sum(b.nbytes for b in blocks.values())
    needed_bytes = sum(b.nbytes for b in needed)
    return NeedReport(
        model=recipe.name,
        needed=needed,
        needed_bytes=needed_bytes,
        have_bytes=total - needed_bytes,
        total_blocks=len(blocks),
        total_bytes=total,
    )
