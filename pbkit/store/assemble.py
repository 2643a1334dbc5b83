"""Rebuild a model directory bit-exactly from blocks, and "which blocks do I still need".

Blocks come from a `BlockSource`: the store's object directory, or a directory of received
blocks (files named `<id>` or `<id>.pb`, in any order, as a broadcast delivers them). Every
block, from either source, is streamed through one reused buffer (read -> BLAKE3 -> write) and
checked against its id (PB id for tensors, blob id for headers and whole files) as it is
written: blocks are content-addressed and a file is exactly its blocks in the recipe's order,
so all blocks verifying means every file is bit-exact. A tensor PB stored as a delta chain
(pbkit.store.delta) is rebuilt in memory from its exactly stored root PB and the chain's delta
blocks, each checked against its id on the way, and the result against the tensor's own PB id
before it is written. `deep=True` also re-computes every
rebuilt file's SHA-256 against the recipe's. Files are written into a temporary directory
beside `out_dir`, fsynced, and the directory is renamed into place only when every file is
complete and verified; on any missing or corrupt block nothing is left behind and the error
lists each unavailable block with its id, bytes and the tensors it holds.
"""

from __future__ import annotations

import collections
import ctypes
import mmap
import os
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from pbkit.common.fs import fsync_dir, make_temp_dir, replace_dir
from pbkit.errors import PbkitError
from pbkit.model.digest import StreamingBlob, StreamingPB, blob_id, file_sha256, pb_id
from pbkit.store import delta as _delta
from pbkit.store.objects import ObjectDir, is_id
from pbkit.store.objects import anonymous_buffer as _anonymous

try:
    import fcntl
except ImportError:  # not on Windows: buffered writes there
    fcntl = None  # type: ignore[assignment]
from pbkit.store.recipe import BlockInfo, Recipe

ProgressFn = Callable[[str, int, int], None]
_SMALL = 1 << 20  # below this a block is read into memory; above, mmapped (check_block)
# Assembly streams every block through one buffer of this size: read -> BLAKE3 -> write. Small
# enough to stay in the core's L2 cache between the three steps (measured on the 1.4 GB GPT-2
# medium: 1 MiB 0.56 CPU-s, 256 KiB 0.62, 4 MiB 1.08; benchmarks/bench_store.py).
_CHUNK = 1 << 20
# Output files are written through _NBUF buffers of _BUF bytes each (one filling, the others
# being written), whole _ALIGN blocks at a time with direct I/O (pbkit.store.objects: same sizes).
_BUF = 8 << 20
_NBUF = 3
_ALIGN = 4096
_AHEAD = 2  # delta-chained tensors rebuilt ahead of the writer, per assembly (threads and memory)
_KICK_MIN = 1 << 20  # without direct I/O, writeback of a written buffer is started if at least this big
_O_DIRECT = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0


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
    needed_by: str | None = None  # the delta block whose reference this block is

    def describe(self) -> str:
        held = ", ".join(self.tensors[:3]) + (f", +{len(self.tensors) - 3} more" if len(self.tensors) > 3 else "")
        ref = f", the reference of delta block {self.needed_by[:16]}" if self.needed_by else ""
        return f"{self.id[:16]} {self.reason} ({self.nbytes} bytes: {held}{ref})"


class BlockUnavailable(Exception):
    """Raised inside a delta chain's rebuild: this stored block is missing or corrupt."""

    def __init__(self, block_id: str, reason: str) -> None:
        super().__init__(block_id, reason)
        self.block_id, self.reason = block_id, reason


def _read_whole(source: "BlockSource", block_id: str) -> Any:
    """A block's bytes as one buffer (bytes, or an open _Mapped), or raise BlockUnavailable."""
    data = source.read(block_id)
    if data is None:
        raise BlockUnavailable(block_id, "missing")
    return data


def _buf(data: Any) -> Any:
    return data.m if isinstance(data, _Mapped) else data


def rebuild_tensor(source: "BlockSource", info: BlockInfo) -> Any:
    """The bytes of tensor PB `info` (a `Recipe.logical_blocks()` entry with a delta chain),
    rebuilt from `source`: from the chain's root PB, each link's delta block is decoded against
    the bytes so far, and the result is checked against the tensor's PB id. Only if that check
    fails are the root (PB id), the delta blocks (blob ids) and each link's result checked one
    by one, to name the culprit: raises BlockUnavailable naming the stored block that is
    missing or corrupt. (In the sound case this hashes each byte once, not three times.)"""
    assert info.dtype is not None and info.shape is not None and info.chain
    dtype, shape = info.dtype, info.shape
    opened: list[Any] = []
    try:
        root = info.chain[-1].ref
        data = _read_whole(source, root)
        opened.append(data)
        blocks = []
        for step in info.chain:
            blocks.append(_read_whole(source, step.block))
            opened.append(blocks[-1])
        cur = _buf(data)
        try:
            for i in reversed(range(len(info.chain))):
                cur = _delta.decode(_buf(blocks[i]), cur, dtype)
            if len(cur) == info.nbytes and pb_id(dtype, shape, cur) == info.id:
                return cur
        except _delta.DeltaError:
            pass
        # something is wrong: find the first block, from the root up, that does not check out
        if len(_buf(data)) != info.nbytes or pb_id(dtype, shape, _buf(data)) != root:
            raise BlockUnavailable(root, "corrupt")
        cur = _buf(data)
        for i in reversed(range(len(info.chain))):
            step = info.chain[i]
            block = _buf(blocks[i])
            if len(block) != step.nbytes or blob_id(block) != step.block:
                raise BlockUnavailable(step.block, "corrupt")
            try:
                cur = _delta.decode(block, cur, dtype)
            except _delta.DeltaError:
                raise BlockUnavailable(step.block, "corrupt") from None
            if pb_id(dtype, shape, cur) != (info.id if i == 0 else info.chain[i - 1].ref):
                raise BlockUnavailable(step.block, "corrupt")  # verifies, yet decodes wrong
        raise BlockUnavailable(info.chain[0].block, "corrupt")  # not reached for a sound codec
    finally:
        for d in opened:
            if isinstance(d, _Mapped):
                d.close()


def _reference_users(stored: dict[str, BlockInfo]) -> dict[str, str]:
    """{stored block id: the delta block that needs it as its reference}."""
    by_target = {b.target: b.id for b in stored.values() if b.kind == "delta"}
    out = {}
    for b in stored.values():
        if b.kind == "delta" and b.ref is not None:
            out[by_target.get(b.ref, b.ref)] = b.id  # the reference's own delta block, or the root PB
    return out


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
    source in the file's order (read -> BLAKE3 -> into the file's write buffer) and its id
    re-computed on the way: a block whose bytes do not hash to its id, or whose size is wrong,
    is corrupt. Blocks are content-addressed and a file is exactly its blocks in the recipe's
    order (a safetensors header is a blob block), so every block verifying means every file is
    the ingested file, bit for bit. Files are streamed by `workers` threads (default: one per
    CPU, 2 to 4), biggest first; full buffers are written by helper threads while the next one
    fills, with direct I/O when `durable` (the disk starts at once, and the fsync only commits
    metadata), else buffered.

    `deep=True` additionally re-computes each rebuilt file's SHA-256 (read back from the output
    file) against the recipe's, re-checking that the recipe was built consistently at ingest;
    it costs more CPU than the copy itself, so it is an explicit option.

    Files go to a temporary directory beside `out_dir`; with `durable`, each is fsynced and the
    directory is renamed into place only when every block of every file has verified. Otherwise
    it is removed and the error lists every missing and corrupt block (once one is found nothing
    more is written, the rest is only checked).

    Raises AssemblyError (out_dir in the way, blocks missing or corrupt, recipe inconsistent)
    and OSError (disk full, permissions).
    """
    t0 = time.perf_counter()
    out_dir = Path(os.path.abspath(out_dir))
    _check_out_dir(out_dir)
    blocks = recipe.logical_blocks()
    stored = recipe.blocks()
    for f in recipe.files:
        if sum(blocks[b].nbytes for b in f.block_ids()) != f.size:
            raise AssemblyError(
                f"cannot assemble {recipe.name!r}: the recipe's blocks of {f.path} do not add up to its size"
            )
    if workers is None:
        workers = max(2, min(4, os.cpu_count() or 2))
    tmp = make_temp_dir(out_dir, prefix=f".{out_dir.name}.pbkit-tmp-")  # the umask's mode, not mkdtemp's 0700
    run = _Run(blocks, source, durable, progress, recipe.logical_bytes, stored)
    for b in stored.values():
        if not source.has(b.id):
            run.bad[b.id] = UnavailableBlock(b.id, b.nbytes, "missing", b.tensors, run.users.get(b.id))
    if run.bad:
        run.stop.set()
    try:
        order = sorted(range(len(recipe.files)), key=lambda i: -recipe.files[i].size)
        written: dict[int, Path] = {}
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=2 * workers, thread_name_prefix="pbkit-write") as writers:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbkit-asm") as pool:
                futures = {pool.submit(run.file, recipe.files[i], tmp, writers): i for i in order}
                for fut in as_completed(futures):
                    try:
                        path = fut.result()
                    except BaseException as exc:  # e.g. disk full: the other files stop writing too
                        run.stop.set()
                        error = error or exc
                        continue
                    if path is not None:
                        written[futures[fut]] = path
        run.close()
        if error is not None:
            raise error
        if run.bad:
            raise _unavailable_error(recipe, list(run.bad.values()), source.describe())
        paths = [written[i] for i in range(len(recipe.files))]
        if deep:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbkit-sha") as pool:
                shas = list(pool.map(file_sha256, paths))
            for f, sha in zip(recipe.files, shas):
                if sha != f.sha256:
                    raise AssemblyError(
                        f"cannot assemble {recipe.name!r}: rebuilt {f.path} does not match the recipe's SHA-256 "
                        "although every block verifies (the recipe is inconsistent)"
                    )
        if durable:
            with ThreadPoolExecutor(max_workers=16) as dir_pool:
                list(dir_pool.map(fsync_dir, sorted({p.parent for p in paths} | {tmp})))
        try:
            replace_dir(tmp, out_dir)  # an empty out_dir (checked above) is replaced
        except OSError as exc:  # something appeared at out_dir meanwhile
            raise AssemblyError(f"{out_dir}: cannot put the assembled model in place ({exc.strerror})") from None
        if durable:
            fsync_dir(out_dir.parent)
    except BaseException:
        run.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return AssembleReport(
        name=recipe.name,
        out_dir=out_dir,
        files=len(recipe.files),
        bytes=recipe.logical_bytes,
        blocks=len(stored),
        seconds=time.perf_counter() - t0,
    )


def _hasher(info: BlockInfo) -> StreamingPB | StreamingBlob:
    # single-threaded: each chunk is hashed while it is hot in this core's cache
    if info.kind == "tensor":
        assert info.dtype is not None and info.shape is not None
        return StreamingPB(info.dtype, info.shape)
    return StreamingBlob()


class _Run:
    """The shared state of one assembly: which blocks failed, progress, the stop flag."""

    def __init__(
        self,
        blocks: dict[str, BlockInfo],
        source: BlockSource,
        durable: bool,
        progress: ProgressFn | None,
        total: int,
        stored: dict[str, BlockInfo] | None = None,
    ) -> None:
        self.blocks, self.source, self.durable = blocks, source, durable
        self.stored = stored if stored is not None else blocks  # what the source holds (delta blocks, roots)
        self.users = _reference_users(self.stored)
        self.progress, self.total, self.done = progress, total, 0
        self.stop = threading.Event()  # set at the first unavailable block or error: write nothing more
        self.bad: dict[str, UnavailableBlock] = {}
        self.checked: set[str] = set()  # blocks checked without writing (each only once)
        self.lock = threading.Lock()
        self.local = threading.local()  # per thread: a scratch buffer, the write buffers
        self.maps: list[tuple[mmap.mmap, memoryview]] = []
        self.pool: ThreadPoolExecutor | None = None  # rebuilds delta-chained tensors ahead

    def buffers(self) -> list[memoryview]:
        """This thread's `_NBUF` page-aligned write buffers, reused for every file it writes
        (touching fresh pages for each file would cost a page fault per 4 KiB)."""
        views = getattr(self.local, "bufs", None)
        if views is None:
            views = []
            for _ in range(_NBUF):
                m = _anonymous(_BUF)
                views.append(memoryview(m))
                with self.lock:
                    self.maps.append((m, views[-1]))
            self.local.bufs = views
        return views

    def close(self) -> None:
        """Free the buffers (every file is closed) and stop the rebuild threads."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        for m, view in self.maps:
            view.release()
            try:
                m.close()
            except BufferError:  # a slice still held by an error's traceback: freed with it
                pass
        self.maps.clear()

    def file(self, f: Any, tmp: Path, writers: ThreadPoolExecutor) -> Path | None:
        """Stream one file's blocks into it; once writing stops, only check the remaining blocks."""
        out = None
        if not self.stop.is_set():
            target = tmp.joinpath(*f.path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            out = _OutFile(target, f.size, self.durable, writers, self.buffers())
        ids = f.block_ids()
        # delta-chained tensors are rebuilt ahead by helper threads (decode overlaps the writes)
        chained = collections.deque(i for i, bid in enumerate(ids) if self.blocks[bid].chain)
        ahead: dict[int, Future[Any]] = {}

        def top_up() -> None:
            while chained and len(ahead) < _AHEAD:
                i = chained.popleft()
                ahead[i] = self.rebuilders().submit(rebuild_tensor, self.source, self.blocks[ids[i]])

        try:
            top_up()
            for pos, bid in enumerate(ids):
                if out is not None and self.stop.is_set():
                    out.abandon()
                    out = None
                job = ahead.pop(pos, None)
                top_up()
                if out is None:
                    with self.lock:
                        if bid in self.checked or bid in self.bad:
                            continue
                        self.checked.add(bid)
                info = self.blocks[bid]
                if info.chain:
                    assert job is not None
                    self._rebuild(info, out, job)
                else:
                    self._record(bid, self._stream(info, out))
            if out is not None and not self.stop.is_set():
                out.finish()
                return target
            return None
        except BaseException:
            self.stop.set()
            raise
        finally:
            for job in ahead.values():
                job.cancel()
            if out is not None:
                out.close()

    def rebuilders(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(max_workers=_AHEAD, thread_name_prefix="pbkit-delta")
            return self.pool

    def _record(self, bid: str, result: bool | None) -> None:
        info = self.blocks[bid]
        with self.lock:
            if result is not True:
                self.stop.set()
                reason = "missing" if result is None else "corrupt"
                self.bad.setdefault(bid, UnavailableBlock(bid, info.nbytes, reason, info.tensors))
            else:
                self.done += info.nbytes
                if self.progress is not None and not self.bad:
                    self.progress("assemble", min(self.done, self.total), self.total)

    def _rebuild(self, info: BlockInfo, out: "_OutFile | None", job: "Future[Any]") -> None:
        """Append a delta-chained tensor PB, rebuilt by `job` (verified against its id), to `out`."""
        try:
            data = job.result()
        except BlockUnavailable as exc:
            b = self.stored.get(exc.block_id) or BlockInfo(exc.block_id, 0, "delta", tensors=info.tensors)
            with self.lock:
                self.stop.set()
                self.bad.setdefault(b.id, UnavailableBlock(b.id, b.nbytes, exc.reason, b.tensors, self.users.get(b.id)))
            return
        if out is not None:
            with memoryview(data) as mv:
                pos = 0
                while pos < len(mv):
                    with out.space(min(_CHUNK, len(mv) - pos)) as dst:
                        n = len(dst)
                        dst[:] = mv[pos : pos + n]
                    out.advance(n)
                    pos += n
        self._record(info.id, True)

    def _scratch(self) -> memoryview:
        view = getattr(self.local, "view", None)
        if view is None:
            view = self.local.view = memoryview(bytearray(_CHUNK))
        return view

    def _stream(self, info: BlockInfo, out: "_OutFile | None") -> bool | None:
        """Hash one block (and append it to `out`): True if its bytes hash to its id with the
        right size, False if corrupt, None if absent. A corrupt block's bytes may already be in
        the file; the caller then discards it."""
        h = _hasher(info)
        path_of = getattr(self.source, "block_path", None)
        if path_of is None:  # a generic BlockSource: one whole buffer
            data = self.source.read(info.id)
            if data is None:
                return None
            try:
                with memoryview(data.m if isinstance(data, _Mapped) else data) as mv:
                    if len(mv) != info.nbytes:
                        return False
                    pos = 0
                    while pos < len(mv):
                        if out is None:
                            n = min(_CHUNK, len(mv) - pos)
                            with mv[pos : pos + n] as part:
                                h.update(part)
                        else:
                            with out.space(min(_CHUNK, len(mv) - pos)) as dst:
                                n = len(dst)
                                dst[:] = mv[pos : pos + n]
                                h.update(dst)
                            out.advance(n)
                        pos += n
            finally:
                if isinstance(data, _Mapped):
                    data.close()
            return h.nbytes == info.nbytes and h.hexdigest() == info.id
        path = path_of(info.id)
        if path is None:
            return None
        try:
            src = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if os.fstat(src).st_size != info.nbytes:
                return False
            left = info.nbytes
            while left:
                dst = out.space(min(_CHUNK, left)) if out is not None else self._scratch()[: min(_CHUNK, left)]
                with dst:
                    n = os.readv(src, [dst])
                    if n == 0:  # shorter than its size said: changed while read
                        return False
                    with dst[:n] as part:
                        h.update(part)
                if out is not None:
                    out.advance(n)
                left -= n
        finally:
            os.close(src)
        return h.hexdigest() == info.id


class _OutFile:
    """One output file written sequentially through `_NBUF` page-aligned buffers of `_BUF` bytes.

    The stream fills one buffer while helper threads write the full ones (a buffer is reused
    once its write is done). Durable files are written with direct I/O where the file system
    allows it, whole `_ALIGN` blocks at a time (the last partial block buffered): the disk
    works while the next blocks are read and hashed, no page cache is filled and written back
    again, and the fsync at the end only commits metadata. Without direct I/O a durable file
    asks the kernel to start writeback of each written buffer (`sync_file_range`, Linux)."""

    def __init__(
        self, path: Path, size: int, durable: bool, writers: ThreadPoolExecutor, bufs: list[memoryview]
    ) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.durable, self.writers = durable, writers
        self.direct = False
        if durable and _O_DIRECT and size >= _ALIGN:
            try:
                fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | _O_DIRECT)
                self.direct = True
            except OSError:  # e.g. a file system without direct I/O
                pass
        self.bufsize = min(_BUF, -(-size // _ALIGN) * _ALIGN) or _ALIGN
        self.bufs = bufs
        self.pending: list[Future[None] | None] = [None] * _NBUF
        self.cur = self.fill = self.offset = 0

    def _view(self, i: int) -> memoryview:
        return self.bufs[i]  # (only the first bufsize bytes are used)

    def space(self, want: int) -> memoryview:
        """Up to `want` free bytes of the current buffer (a slice: the caller releases it)."""
        fut = self.pending[self.cur]
        if fut is not None:  # this buffer's previous write must be done before it is refilled
            self.pending[self.cur] = None
            fut.result()
        return self._view(self.cur)[self.fill : self.fill + min(want, self.bufsize - self.fill)]

    def advance(self, n: int) -> None:
        self.fill += n
        if self.fill == self.bufsize:
            self.pending[self.cur] = self.writers.submit(self._write, self._view(self.cur)[: self.bufsize], self.offset)
            self.offset += self.bufsize
            self.fill = 0
            self.cur = (self.cur + 1) % _NBUF

    def _write(self, view: memoryview, offset: int) -> None:
        done = 0
        while done < len(view):
            with view[done:] as rest:
                done += os.pwrite(self.fd, rest, offset + done)
        if self.durable and not self.direct and _SYNC_FILE_RANGE is not None and len(view) >= _KICK_MIN:
            _SYNC_FILE_RANGE(self.fd, offset, len(view))  # start writeback now; the fsync waits for it

    def _wait(self) -> None:
        for i, fut in enumerate(self.pending):
            if fut is not None:
                self.pending[i] = None
                fut.result()

    def finish(self) -> None:
        """Write the last partial buffer, wait for every write, fsync if durable."""
        self._wait()
        if self.fill:
            view = self._view(self.cur)
            whole = self.fill - self.fill % _ALIGN if self.direct else self.fill
            if whole:
                self._write(view[:whole], self.offset)
            if whole < self.fill:  # direct I/O writes whole blocks only: the tail goes buffered
                fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~_O_DIRECT)
                self._write(view[whole : self.fill], self.offset + whole)
        if self.durable:
            os.fsync(self.fd)

    def abandon(self) -> None:
        """Stop writing (a block failed elsewhere); the file will be removed."""
        self.close()

    def close(self) -> None:
        if self.fd < 0:
            return
        for fut in self.pending:  # the buffers and the fd must outlive the writes in flight
            if fut is not None:
                fut.exception()
        self.pending = [None] * _NBUF
        os.close(self.fd)
        self.fd = -1


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
    """Exactly which stored blocks (and bytes) of `recipe` are not in `have`.

    A delta block implies its reference: for a tensor stored as a delta chain, the links are
    followed from the tensor down only until a PB in `have` (the tensor itself, or the
    reference of a link, e.g. held because the device holds the base) or the chain's root, so
    a device that holds the base needs only the fine-tune's delta blocks."""
    have = set(have)
    blocks = recipe.blocks()
    wanted: set[str] = set()
    for info in recipe.logical_blocks().values():
        if info.id in have:
            continue
        if not info.chain:
            wanted.add(info.id)
            continue
        for step in info.chain:
            wanted.add(step.block)
            if step.ref in have:
                break
        else:
            wanted.add(info.chain[-1].ref)
    needed = [b for b in blocks.values() if b.id in wanted and b.id not in have]
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
