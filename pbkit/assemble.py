"""Rebuild a model directory bit-exactly from blocks, and "which blocks do I still need".

Blocks come from a `BlockSource`: the store's object directory, or a directory of received
blocks (files named `<id>` or `<id>.pb`, in any order, as a broadcast delivers them). Every
block, from either source, is streamed through one reused buffer (read -> BLAKE3 -> write) and
checked against its id (PB id for tensors, blob id for headers and whole files) as it is
written: blocks are content-addressed and a file is exactly its blocks in the recipe's order,
so all blocks verifying means every file is bit-exact. `deep=True` also re-computes every
rebuilt file's SHA-256 against the recipe's. Files are written into a temporary directory
beside `out_dir`, fsynced, and the directory is renamed into place only when every file is
complete and verified; on any missing or corrupt block nothing is left behind and the error
lists each unavailable block with its id, bytes and the tensors it holds.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from pbkit.digest import StreamingBlob, StreamingPB, blob_id, file_sha256, pb_id
from pbkit.errors import PbkitError
from pbkit.objects import ObjectDir, fsync_dir, is_id
from pbkit.recipe import BlockInfo, Recipe

ProgressFn = Callable[[str, int, int], None]
_SMALL = 1 << 20  # below this a block is read into memory; above, mmapped (check_block)
# Assembly streams every block through one buffer of this size: read -> BLAKE3 -> write. Small
# enough to stay in the core's L2 cache between the three steps (measured on the 1.4 GB GPT-2
# medium: 1 MiB 0.56 CPU-s, 256 KiB 0.62, 4 MiB 1.08; benchmarks/bench_store.py).
_CHUNK = 1 << 20
_KICK = 16 << 20  # ask for writeback of an output file every this many bytes (durable assembly)
_KICK_MIN = 1 << 20  # and of a block's last range if at least this big
_SYNC_THREADS = 16  # fsyncs in flight at once (lets the file system group its journal commits)
_MAX_OPEN = 256  # output files opened per group (a model with more files is assembled in groups)


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
    """Where blocks come from. A source may also offer `block_path(block_id) -> str | None`
    (a file holding exactly the block's bytes): assembly then streams the file instead of
    calling `read` (StoreBlocks and DirBlocks do)."""

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

    def block_path(self, block_id: str) -> str | None:
        """Where the block's bytes are (assembly streams them from there); optional in a BlockSource."""
        return str(self.objects.path(block_id))

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

    def block_path(self, block_id: str) -> str | None:
        return self.files.get(block_id)

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
    deep: bool = False,
    workers: int | None = None,
) -> AssembleReport:
    """Write the model's files into `out_dir` (must not exist or be empty), bit-exact and verified.

    Every block, from the store or a received-blocks directory alike, is streamed from its
    source through a reused buffer (read -> BLAKE3 -> write at its offset in its file) and its
    id re-computed on the way: a block whose bytes do not hash to its id, or whose size is
    wrong, is corrupt. Blocks are content-addressed and a file is exactly its blocks in the
    recipe's order (a safetensors header is a blob block), so every block verifying means every
    file is the ingested file, bit for bit. `workers` threads (default: one per CPU, 2 to 4)
    stream different blocks at once (blake3 and the system calls release the GIL).

    `deep=True` additionally re-computes each rebuilt file's SHA-256 (read back from the output
    file) against the recipe's, re-checking that the recipe was built consistently at ingest;
    it costs more CPU than the copy itself, so it is an explicit option.

    Files go to a temporary directory beside `out_dir`; with `durable`, writeback starts while
    they are written and each is fsynced; the directory is renamed into place only when every
    block of every file has verified. Otherwise it is removed and the error lists every missing
    and corrupt block (once one is found nothing more is written, the rest is only checked).
    """
    t0 = time.perf_counter()
    out_dir = Path(os.path.abspath(out_dir))
    _check_out_dir(out_dir)
    blocks = recipe.blocks()
    bad: dict[str, UnavailableBlock] = {
        b.id: UnavailableBlock(b.id, b.nbytes, "missing", b.tensors) for b in blocks.values() if not source.has(b.id)
    }
    for f in recipe.files:
        if sum(blocks[b].nbytes for b in f.block_ids()) != f.size:
            raise AssemblyError(f"cannot assemble {recipe.name!r}: the recipe's blocks of {f.path} do not add up to its size")
    if workers is None:
        workers = max(2, min(4, os.cpu_count() or 2))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.pbkit-tmp-", dir=out_dir.parent))
    total = recipe.logical_bytes
    done = 0
    stop = threading.Event()  # set at the first unavailable block: write nothing more
    if bad:
        stop.set()
    sync = _Syncer(durable)
    local = threading.local()

    def work(info: BlockInfo, fd: int | None, offset: int) -> bool | None:
        view = getattr(local, "view", None)
        if view is None:
            view = local.view = memoryview(bytearray(_CHUNK))
        writing = fd is not None and not stop.is_set()
        try:
            r = _stream_block(source, info, view, fd if writing else None, offset, sync)
        except BaseException:
            stop.set()  # e.g. disk full: the others stop writing too
            raise
        if r is not True:
            stop.set()
        return r

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbkit-asm") as pool:
            # files in groups (bounded open files); in a group, biggest blocks first (balance)
            groups = [recipe.files[i : i + _MAX_OPEN] for i in range(0, len(recipe.files), _MAX_OPEN)]
            written: list[Path] = []
            checked: set[str] = set()
            for files in groups:
                group: list[tuple[Any, int]] = []  # (FileRecipe, fd, or -1 when only checking)
                for f in files:
                    fd = -1
                    if not stop.is_set():
                        target = tmp.joinpath(*f.path.split("/"))
                        target.parent.mkdir(parents=True, exist_ok=True)
                        fd = sync.open(target)
                        written.append(target)
                    group.append((f, fd))
                items = []  # (nbytes, file index, block id, offset)
                for i, (f, fd) in enumerate(group):
                    off = 0
                    for bid in f.block_ids():
                        items.append((blocks[bid].nbytes, i, bid, off))
                        off += blocks[bid].nbytes
                items.sort(key=lambda x: -x[0])
                remaining = [len(f.block_ids()) for f, _ in group]
                futures = {}
                for n, i, bid, off in items:
                    fd = group[i][1]
                    if fd < 0 and (bid in bad or bid in checked):
                        remaining[i] -= 1
                        continue
                    if fd < 0:
                        checked.add(bid)  # check each block once when not writing
                    fut = pool.submit(work, blocks[bid], fd if fd >= 0 else None, off)
                    futures[fut] = (i, bid)
                for i, (f, fd) in enumerate(group):
                    if remaining[i] == 0 and fd >= 0:
                        sync.done(fd, keep=not stop.is_set())
                for fut in as_completed(futures):
                    i, bid = futures[fut]
                    r = fut.result()
                    info = blocks[bid]
                    if r is not True:
                        bad.setdefault(bid, UnavailableBlock(bid, info.nbytes, "missing" if r is None else "corrupt", info.tensors))
                    else:
                        done += info.nbytes
                        if progress is not None and not bad:
                            progress("assemble", min(done, total), total)
                    remaining[i] -= 1
                    if remaining[i] == 0 and group[i][1] >= 0:
                        sync.done(group[i][1], keep=not stop.is_set())
        sync.wait()  # every output file fsynced (or closed)
        if bad:
            raise _unavailable_error(recipe, list(bad.values()), source.describe())
        if deep:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbkit-sha") as pool:
                shas = list(pool.map(file_sha256, written))
            for f, sha in zip(recipe.files, shas):
                if sha != f.sha256:
                    raise AssemblyError(
                        f"cannot assemble {recipe.name!r}: rebuilt {f.path} does not match the recipe's SHA-256 "
                        "although every block verifies (the recipe is inconsistent)"
                    )
        if durable:
            with ThreadPoolExecutor(max_workers=16) as dir_pool:
                list(dir_pool.map(fsync_dir, sorted({p.parent for p in written} | {tmp})))
        try:
            if out_dir.is_dir():
                out_dir.rmdir()  # empty (checked above); rename needs it gone on some systems
            os.rename(tmp, out_dir)
        except OSError as exc:  # something appeared at out_dir meanwhile
            raise AssemblyError(f"{out_dir}: cannot put the assembled model in place ({exc.strerror})") from None
        if durable:
            fsync_dir(out_dir.parent)
    except BaseException:
        sync.abort()
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


def _hasher(info: BlockInfo) -> StreamingPB | StreamingBlob:
    # single-threaded: each chunk is hashed while it is hot in this core's cache
    if info.kind == "tensor":
        assert info.dtype is not None and info.shape is not None
        return StreamingPB(info.dtype, info.shape)
    return StreamingBlob()


def _stream_block(
    source: BlockSource, info: BlockInfo, view: memoryview, fd: int | None, offset: int, sync: "_Syncer"
) -> bool | None:
    """Stream one block through `view`: BLAKE3 it and, if `fd`, write it at `offset` of `fd`.

    True if its bytes hash to its id with the right size, False if corrupt, None if absent.
    A corrupt block's bytes may already be in `fd`; the caller then discards the file.
    """
    h = _hasher(info)
    out = _BlockWriter(fd, offset, sync) if fd is not None else None
    path_of = getattr(source, "block_path", None)
    if path_of is None:  # a generic BlockSource: one whole buffer
        data = source.read(info.id)
        if data is None:
            return None
        try:
            with memoryview(data.m if isinstance(data, _Mapped) else data) as mv:
                if len(mv) != info.nbytes:
                    return False
                for off in range(0, len(mv), len(view)):
                    with mv[off : off + len(view)] as part:
                        h.update(part)
                        if out is not None:
                            out.write(part)
        finally:
            if isinstance(data, _Mapped):
                data.close()
    else:
        path = path_of(info.id)
        if path is None:
            return None
        try:
            src = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            while True:
                n = os.readv(src, [view])
                if n == 0:
                    break
                if h.nbytes + n > info.nbytes:  # longer than the block: corrupt, write no more
                    return False
                with view[:n] as part:
                    h.update(part)
                    if out is not None:
                        out.write(part)
        finally:
            os.close(src)
    if out is not None:
        out.flush()
    return h.nbytes == info.nbytes and h.hexdigest() == info.id


class _BlockWriter:
    """Writes a block's chunks at their offsets; asks for writeback of every `_KICK` bytes."""

    def __init__(self, fd: int, offset: int, sync: "_Syncer") -> None:
        self.fd, self.start, self.pos, self.sync = fd, offset, offset, sync

    def write(self, part: memoryview) -> None:
        n = len(part)
        done = 0
        while done < n:
            with part[done:] as rest:
                done += os.pwrite(self.fd, rest, self.pos + done)
        self.pos += n
        if self.pos - self.start >= _KICK:
            self.flush()

    def flush(self) -> None:
        if self.pos - self.start >= _KICK_MIN:  # smaller ranges are left to the fsync
            self.sync.kick(self.fd, self.start, self.pos - self.start)
            self.start = self.pos


class _Syncer:
    """Output files: writeback started early, fsynced in parallel, closed when done.

    While a file is written, a helper thread asks the kernel to start writing each newly
    written range back (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, Linux; every `_KICK` bytes
    and at the end of each block): the disk then works while the next blocks are hashed instead
    of all at the final fsync. Each finished file is fsynced by a pool of threads (several
    fsyncs in flight let the file system group its journal commits). Durability still comes
    only from fsync; the kicks are a scheduling hint.
    """

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self.kicker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbkit-wb") if durable and _SYNC_FILE_RANGE else None
        )
        self.pool = ThreadPoolExecutor(max_workers=_SYNC_THREADS, thread_name_prefix="pbkit-fsync") if durable else None
        self.kicks: dict[int, list[Future[None]]] = {}  # fd -> its writeback requests
        self.lock = threading.Lock()
        self.futures: list[Future[None]] = []
        self.open_fds: set[int] = set()

    def open(self, path: Path) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.open_fds.add(fd)
        self.kicks[fd] = []
        return fd

    def kick(self, fd: int, offset: int, nbytes: int) -> None:
        if self.kicker is not None:
            with self.lock:
                self.kicks[fd].append(self.kicker.submit(_SYNC_FILE_RANGE, fd, offset, nbytes))

    def done(self, fd: int, keep: bool = True) -> None:
        """The file is complete: fsync (if durable and `keep`) and close it in the background."""
        with self.lock:
            kicks = self.kicks.pop(fd)
        if self.pool is None:
            self._close(fd)
            return
        self.futures.append(self.pool.submit(self._finish, fd, kicks, keep))

    def _finish(self, fd: int, kicks: list[Future[None]], keep: bool) -> None:
        try:
            for k in kicks:  # the fd must stay open until they ran
                k.exception()
            if keep:
                os.fsync(fd)
        finally:
            self._close(fd)

    def _close(self, fd: int) -> None:
        self.open_fds.discard(fd)
        os.close(fd)

    def wait(self) -> None:
        try:
            for fut in self.futures:
                fut.result()
        finally:
            self.futures.clear()
            self._shutdown()

    def abort(self) -> None:
        for fut in self.futures:
            fut.exception()
        self.futures.clear()
        self._shutdown()
        for fd in list(self.kicks):  # files not handed to done()
            self.kicks.pop(fd)
            self._close(fd)

    def _shutdown(self) -> None:
        if self.kicker is not None:
            self.kicker.shutdown(wait=True)
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def kick(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, 2)  # SYNC_FILE_RANGE_WRITE: start writeback, do not wait; errors ignored

    return kick


_SYNC_FILE_RANGE = _load_sync_file_range()


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
