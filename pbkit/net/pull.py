"""`pbkit pull NAME --from URL`: a device fetching only the blocks its store lacks.

1. Fetch the model's recipe; follow its base: a base the local store holds is matched by its
   content digest (a base of that name with other content is refused, by name); a base it does
   not hold is pulled too (its recipe first, then its blocks).
2. Subtract every block the store already has (any model's, or left by an interrupted pull).
3. Fetch the missing blocks concurrently (httpx, one connection per worker), biggest first. Each
   streams into a temporary file of the store (tmp/), re-hashed as it arrives against its id with
   the recipe's dtype and shape; only a block whose length and hash match is fsynced and linked
   into the object directory (`ObjectDir.commit_file`, the store's atomic write path). A block is
   durable as soon as it is in place, so a rerun after SIGKILL fetches only what is still missing.
4. Register the models, base first, in one index transaction each (as ingest publishes).
5. With `out`, assemble the model bit-exactly (every block verified again on the way).

The store's shared lock is held throughout, so `gc` never deletes blocks of a pull that has not
registered its model yet. Any failure (unreachable server, server dying mid-transfer, truncated
body, wrong bytes) is one PullError line naming the URL or block; nothing unverified enters the
store, which verifies clean after it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from pbkit.errors import PbkitError
from pbkit.model.digest import StreamingBlob, StreamingPB
from pbkit.net import protocol
from pbkit.store.objects import TMP_PREFIX
from pbkit.store.recipe import BaseRef, BlockInfo, Recipe, RecipeError

ProgressFn = Callable[[str, int, int], None]
DEFAULT_WORKERS = 4  # connections in flight; 4 keep a loopback link and 2 cores busy (benchmarks/bench_net.py)
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class PullError(PbkitError):
    """A pull failed at run time: the server unreachable or misbehaving, a block with wrong bytes."""

    exit_code = 1


class PullRefused(PbkitError):
    """A pull that cannot be done as asked: unknown model, a base or name clash in the local store."""


@dataclass
class PullReport:
    model: str
    fetched_blocks: int
    fetched_bytes: int  # block bytes received over the network
    skipped_bytes: int  # block bytes of the pulled models the store already held
    recipe_bytes: int  # bytes of the recipes received
    header_bytes: int  # bytes of the HTTP response status lines and headers received
    registered: list[str] = field(default_factory=list)  # models newly registered, base first
    seconds: float = 0.0
    out_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pull(
    store: Any,
    url: str,
    name: str,
    out: str | os.PathLike[str] | None = None,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressFn | None = None,
) -> PullReport:
    """Pull model `name` (and, if needed, its base chain) from the server at `url` into `store`.

    Raises PullRefused (unknown model, a local base of the same name with other content, the name
    taken by a different model), PullError (network failure, bad bytes from the server: nothing
    unverified was stored), AssemblyError/StoreIOError when writing `out`.
    """
    t0 = time.perf_counter()
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise PullRefused(f"--from {url!r}: not an http:// or https:// URL")
    if out is not None:
        from pbkit.store.assemble import _check_out_dir

        _check_out_dir(Path(os.path.abspath(out)))  # refused before any transfer, not after
    limits = httpx.Limits(max_connections=workers + 1, max_keepalive_connections=workers + 1)
    with httpx.Client(base_url=url, timeout=_TIMEOUT, limits=limits) as client, store.shared_lock():
        session = _Session(store, client, url)
        plan = session.plan(name)
        blocks: dict[str, BlockInfo] = {}
        for recipe, _ in plan:
            for bid, info in recipe.blocks().items():
                blocks.setdefault(bid, info)
        missing = sorted((b for b in blocks.values() if not store.objects.exists(b.id)), key=lambda b: -b.nbytes)
        skipped = sum(b.nbytes for b in blocks.values()) - sum(b.nbytes for b in missing)
        session.fetch_all(missing, workers, progress)
        registered = [r.name for r, text in plan if store.register(r, text)]
    report = PullReport(
        model=name,
        fetched_blocks=len(missing),
        fetched_bytes=session.fetched,
        skipped_bytes=skipped,
        recipe_bytes=session.recipe_bytes,
        header_bytes=session.header_bytes,
        registered=registered,
    )
    if out is not None:
        report.out_dir = str(store.assemble(name, out).out_dir)
    report.seconds = time.perf_counter() - t0
    return report


class _Session:
    def __init__(self, store: Any, client: httpx.Client, url: str) -> None:
        self.store, self.client, self.url = store, client, url
        self.fetched = 0
        self.recipe_bytes = 0
        self.header_bytes = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    # ------------------------------------------------------------------ recipes
    def _recipe(self, name: str) -> tuple[Recipe, bytes]:
        path = protocol.recipe_path(name)
        where = f"{self.url}{path}"
        try:
            resp = self.client.get(path)
        except httpx.HTTPError as exc:
            raise PullError(f"{where}: {_describe(exc)}") from None
        if resp.status_code == 404:
            raise PullRefused(f"{self.url}: no model named {name!r} on the server")
        if resp.status_code != 200:
            raise PullError(f"{where}: HTTP {resp.status_code} ({_error_text(resp)})")
        self.recipe_bytes += len(resp.content)
        self.header_bytes += _header_size(resp)
        try:
            recipe = Recipe.from_json(resp.content, where=where)
        except RecipeError as exc:
            raise PullError(str(exc)) from None
        etag = resp.headers.get("etag", "").strip('"')
        if etag and etag != recipe.id:
            raise PullError(f"{where}: the recipe does not hash to its ETag {etag[:16]}")
        return recipe, recipe.canonical_json()

    def plan(self, name: str) -> list[tuple[Recipe, bytes]]:
        """The recipes to register, base first: `name` and each base the store does not hold."""
        chain: list[tuple[Recipe, bytes]] = []
        wanted = name
        while True:
            recipe, text = self._recipe(wanted)
            row = self.store.index.model(recipe.name)
            if row is not None and row.recipe_id != recipe.id:
                raise PullRefused(
                    f"model {recipe.name!r} is already in {self.store.root} with other content "
                    f"(recipe {row.recipe_id[:16]}, the server's {recipe.id[:16]}); pbkit rm it first"
                )
            if any(r.name == recipe.name for r, _ in chain):
                raise PullError(f"{self.url}: the base chain of {name!r} loops at {recipe.name!r}")
            base = recipe.base
            if base is None:
                chain.append((recipe, text))
                break
            local = self.store.index.model(base.name)
            if local is not None:
                if local.content_digest != base.content_digest:
                    raise PullRefused(
                        f"{recipe.name!r} is built on {base.name!r} with content {base.content_digest[:16]}, but "
                        f"{base.name!r} in {self.store.root} has content {local.content_digest[:16]}; refusing to mix them"
                    )
                chain.append((recipe, text))
                break
            same = [m for m in self.store.index.models() if m.content_digest == base.content_digest]
            if same:  # the store holds the base under another name: point the recipe at it
                ref = BaseRef(same[0].name, same[0].recipe_id, same[0].content_digest)
                recipe = Recipe.build(recipe.name, recipe.kind, ref, recipe.source, recipe.files)
                chain.append((recipe, recipe.canonical_json()))
                break
            chain.append((recipe, text))
            wanted = base.name
        return chain[::-1]

    # ------------------------------------------------------------------ blocks
    def fetch_all(self, missing: list[BlockInfo], workers: int, progress: ProgressFn | None) -> None:
        total = sum(b.nbytes for b in missing)
        done = [0]

        def advance(n: int, fetched: bool = True) -> None:
            with self.lock:
                done[0] += n
                if fetched:  # bytes a previous, interrupted pull received count for progress only
                    self.fetched += n
            if progress is not None:
                progress("pull", done[0], total)

        if progress is not None:
            progress("pull", 0, total)
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pbkit-pull") as pool:
            futures = [pool.submit(self._fetch, info, advance) for info in missing]
            finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                self.stop.set()  # blocks not yet started are skipped; those in flight stop at their next chunk
                for f in pending:
                    f.cancel()
                wait(pending)
                raise failed[0].exception()  # type: ignore[misc]

    def _fetch(self, info: BlockInfo, advance: Callable[[int, bool], None]) -> None:
        if self.stop.is_set() or self.store.objects.exists(info.id):
            return
        path = protocol.block_path(info.id)
        where = f"{self.url}{path}"
        hasher = (
            StreamingPB(info.dtype, info.shape, info.nbytes)  # type: ignore[arg-type]
            if info.kind == "tensor"
            else StreamingBlob(info.nbytes)
        )
        fd, tmp, have = self._partial(info)
        keep = True  # the bytes so far are kept for a rerun unless they proved wrong
        done = False
        try:
            if have:  # what an interrupted pull received: hashed again, then asked for the rest
                _hash_file(fd, have, hasher)
                advance(have, False)
            try:
                headers = {"range": f"bytes={have}-"} if have else {}
                with self.client.stream("GET", path, headers=headers) as resp:
                    with self.lock:
                        self.header_bytes += _header_size(resp)
                    if resp.status_code == 200 and have:  # the server ignored the range: start over
                        os.ftruncate(fd, 0)
                        os.lseek(fd, 0, os.SEEK_SET)
                        hasher = (
                            StreamingPB(info.dtype, info.shape, info.nbytes)  # type: ignore[arg-type]
                            if info.kind == "tensor"
                            else StreamingBlob(info.nbytes)
                        )
                    elif resp.status_code == 206 and not resp.headers.get("content-range", "").startswith(
                        f"bytes {have}-"
                    ):
                        keep = False
                        raise PullError(f"{where}: a Content-Range that is not the one asked for (bytes {have}-)")
                    elif resp.status_code not in (200, 206):
                        resp.read()
                        if resp.status_code == 416:
                            keep = False  # our partial bytes do not fit the block: drop them
                        raise PullError(f"{where}: HTTP {resp.status_code} ({_error_text(resp)})")
                    for chunk in resp.iter_raw():
                        if self.stop.is_set():
                            return
                        if hasher.nbytes + len(chunk) > info.nbytes:
                            keep = False
                            raise PullError(f"{where}: the server sent more than the block's {info.nbytes} bytes")
                        hasher.update(chunk)
                        _write_all(fd, chunk)
                        advance(len(chunk), True)
            except httpx.HTTPError as exc:
                raise PullError(f"{where}: {_describe(exc)}") from None
            if hasher.nbytes != info.nbytes:
                raise PullError(f"{where}: truncated body ({hasher.nbytes} of {info.nbytes} bytes)")
            if hasher.hexdigest() != info.id:
                keep = False
                raise PullError(f"{where}: the bytes received do not hash to block {info.id[:16]} (rejected)")
            os.fsync(fd)
            done = True
        finally:
            os.close(fd)  # also releases the lock on the partial file
            if not done and not keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self.store.objects.commit_file(info.id, tmp)

    def _partial(self, info: BlockInfo) -> tuple[int, str, int]:
        """The block's partial file under tmp/ (open, locked, positioned at its end) and how many
        bytes it holds: a rerun after an interruption continues from there with a Range request.
        Where another pull holds that file (or no file locking exists), a fresh temporary file."""
        part = os.path.join(self.store.objects.tmp, f"{TMP_PREFIX}pull-{info.id}.part")
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (ImportError, OSError):  # another pull of this block in flight, or no flock here
            os.close(fd)
            fd, tmp = self.store.objects.temp_file()
            return fd, tmp, 0
        have = os.fstat(fd).st_size
        if have >= info.nbytes:  # cannot be a prefix of the block: start over
            os.ftruncate(fd, 0)
            have = 0
        os.lseek(fd, have, os.SEEK_SET)
        return fd, part, have


def _hash_file(fd: int, n: int, hasher: StreamingPB | StreamingBlob) -> None:
    """Feed the first `n` bytes of a file to `hasher`, 1 MiB at a time."""
    done = 0
    while done < n:
        chunk = os.pread(fd, min(n - done, 1 << 20), done)
        if not chunk:
            raise PullError(f"partial block file shrank while being read (fd {fd})")
        hasher.update(chunk)
        done += len(chunk)


def _header_size(resp: httpx.Response) -> int:
    """Bytes of a response's status line and headers as sent (HTTP/1.1)."""
    status = len(f"HTTP/1.1 {resp.status_code} {resp.reason_phrase}\r\n")
    return status + sum(len(k) + len(v) + 4 for k, v in resp.headers.raw) + 2


def _write_all(fd: int, data: bytes) -> None:
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc or 'connection refused'})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({exc.__class__.__name__})"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return f"the server broke off the transfer ({exc or exc.__class__.__name__})"
    return f"{exc.__class__.__name__}: {exc}"


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:200] or "no body"
