"""The edge backend of `pbkit serve --upstream URL --capacity SIZE --policy lru|lfu`.

An edge node answers the same routes as an origin. Model lists and recipes are passed through
from the upstream (they are small and change when the origin ingests). A block is served from
the edge's cache when it is there (a hit); otherwise (a miss) it is fetched from the upstream
once, however many devices ask for it at the same time, re-hashed against its id as it streams
in (dtype and shape from the upstream's X-Pbkit-* headers, which the id binds), and kept within
`capacity` bytes by evicting blocks in the order of the named policy (pbkit.net.eviction). A
block being sent to a device is pinned and never evicted under it; a block larger than the whole
capacity is passed through without being kept. The cache lives in `cache_dir/blocks/` and starts
empty on every start (an edge node is a cache, not a store).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pbkit.model.digest import StreamingBlob, StreamingPB
from pbkit.net import protocol
from pbkit.net.eviction import make_policy
from pbkit.net.server import BlockFile, NotFound, UpstreamFailed
from pbkit.store.recipe import BlockInfo

_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


@dataclass
class _Entry:
    info: BlockInfo
    path: str


@dataclass
class EdgeBackend:
    upstream: str
    capacity: int
    policy: str = "lru"
    cache_dir: Path | None = None
    role: str = "edge"
    hits: int = 0
    misses: int = 0
    bytes_from_upstream: int = 0
    evictions: int = 0
    passed_through: int = 0  # blocks larger than the capacity, served without being kept
    cached_bytes: int = 0
    entries: dict[str, _Entry] = field(default_factory=dict)
    pins: dict[str, int] = field(default_factory=dict)
    inflight: dict[str, "asyncio.Task[_Transient | None]"] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)  # requests awaiting an in-flight fetch

    def __post_init__(self) -> None:
        self.upstream = self.upstream.rstrip("/")
        self._policy = make_policy(self.policy)
        self._own_dir = self.cache_dir is None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self.cache_dir is None:
            self.cache_dir = Path(tempfile.mkdtemp(prefix="pbkit-edge-"))
        self.blocks_dir = Path(self.cache_dir) / "blocks"
        self.tmp_dir = Path(self.cache_dir) / "tmp"
        for d in (self.blocks_dir, self.tmp_dir):  # starts cold: nothing of a previous run is trusted
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=_TIMEOUT)

    async def stop(self) -> None:
        for task in list(self.inflight.values()):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
        if self._own_dir and self.cache_dir is not None:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    # ------------------------------------------------------------------ pass-through
    async def _get(self, path: str) -> httpx.Response:
        assert self._client is not None
        try:
            resp = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"upstream {self.upstream}{path}: {exc.__class__.__name__}: {exc}") from None
        if resp.status_code == 404:
            raise NotFound(_error_text(resp))
        if resp.status_code != 200:
            raise UpstreamFailed(f"upstream {self.upstream}{path}: HTTP {resp.status_code}: {_error_text(resp)}")
        return resp

    async def models(self) -> list[dict[str, Any]]:
        resp = await self._get(protocol.MODELS)
        try:
            return list(resp.json()["models"])
        except (ValueError, KeyError, TypeError):
            raise UpstreamFailed(f"upstream {self.upstream}{protocol.MODELS}: not a model list") from None

    async def recipe(self, name: str) -> tuple[bytes, str]:
        resp = await self._get(protocol.recipe_path(name))
        return resp.content, resp.headers.get("etag", "").strip('"')

    # ------------------------------------------------------------------ blocks
    async def block(self, block_id: str) -> BlockFile:
        if block_id in self.entries:
            self.hits += 1
            self._policy.touch(block_id)
            return self._pinned(block_id)
        task = self.inflight.get(block_id)
        if task is None:
            self.misses += 1
            task = self.inflight[block_id] = asyncio.ensure_future(self._fetch(block_id))
            task.add_done_callback(lambda _t: self._settle(block_id))
        else:
            self.hits += 1  # the block is on its way for another device: no second upstream fetch
        # Waiters are counted so that the block, once in the cache, is pinned for each of them
        # before any other fetch can make room by evicting it.
        self.waiting[block_id] = self.waiting.get(block_id, 0) + 1
        try:
            result = await asyncio.shield(task)
        except OSError as exc:  # the edge's own disk (full, permissions)
            raise UpstreamFailed(f"edge cache {self.cache_dir}: {exc.strerror or exc}") from None
        except asyncio.CancelledError:  # the device went away: give back its claim on the block
            if self.waiting.get(block_id):
                self.waiting[block_id] -= 1
            elif task.done() and not task.cancelled() and task.exception() is None and task.result() is None:
                self._unpin(block_id)
            raise
        if result is None:
            return self._pinned(block_id, pin=False)  # pinned on arrival for this waiter
        return result.acquire()  # too big to keep: a file of its own, removed after its last response

    def _settle(self, block_id: str) -> None:
        self.inflight.pop(block_id, None)
        self.waiting.pop(block_id, None)  # left over only if the fetch failed: nothing to pin

    def _pinned(self, block_id: str, pin: bool = True) -> BlockFile:
        entry = self.entries[block_id]
        if pin:
            self.pins[block_id] = self.pins.get(block_id, 0) + 1

        return BlockFile(entry.path, entry.info, os.stat(entry.path), lambda: self._unpin(block_id))

    def _unpin(self, block_id: str) -> None:
        left = self.pins.get(block_id, 1) - 1
        if left > 0:
            self.pins[block_id] = left
        else:
            self.pins.pop(block_id, None)

    async def _fetch(self, block_id: str) -> "_Transient | None":
        """Fetch one block from the upstream into the cache (or, too big, into a file of its own)."""
        assert self._client is not None
        path = protocol.block_path(block_id)
        url = f"{self.upstream}{path}"
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix=".blk-")
        try:
            try:
                async with self._client.stream("GET", path) as resp:
                    if resp.status_code == 404:
                        raise NotFound(f"no block {block_id}")
                    if resp.status_code != 200:
                        raise UpstreamFailed(f"{url}: HTTP {resp.status_code}")
                    try:
                        nbytes = int(resp.headers["content-length"])
                        info = protocol.info_from_headers(block_id, nbytes, resp.headers)
                    except (KeyError, ValueError) as exc:
                        raise UpstreamFailed(f"{url}: {exc}") from None
                    hasher = (
                        StreamingPB(info.dtype, info.shape, nbytes)  # type: ignore[arg-type]
                        if info.kind == "tensor"
                        else StreamingBlob(nbytes)
                    )
                    async for chunk in resp.aiter_raw():
                        hasher.update(chunk)
                        os.write(fd, chunk)
                        self.bytes_from_upstream += len(chunk)
            except httpx.HTTPError as exc:
                raise UpstreamFailed(f"{url}: {exc.__class__.__name__}: {exc}") from None
            if hasher.nbytes != nbytes or hasher.hexdigest() != block_id:
                raise UpstreamFailed(f"{url}: the upstream's bytes do not hash to block {block_id[:16]}")
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        if not self._make_room(nbytes):
            self.passed_through += 1
            return _Transient(tmp, info)
        final = str(self.blocks_dir / block_id)
        os.replace(tmp, final)
        self.entries[block_id] = _Entry(info, final)
        self.pins[block_id] = self.pins.get(block_id, 0) + self.waiting.pop(block_id, 0)
        self.cached_bytes += nbytes
        self._policy.add(block_id)
        return None

    def _make_room(self, nbytes: int) -> bool:
        """Evict (never a pinned block) until `nbytes` more fit; False if they cannot."""
        if nbytes > self.capacity:
            return False
        if self.cached_bytes + nbytes <= self.capacity:
            return True
        for victim in self._policy.victims():
            if self.pins.get(victim):
                continue
            entry = self.entries.pop(victim)
            self._policy.remove(victim)
            with _suppress():
                os.unlink(entry.path)
            self.cached_bytes -= entry.info.nbytes
            self.evictions += 1
            if self.cached_bytes + nbytes <= self.capacity:
                return True
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "policy": self.policy,
            "capacity": self.capacity,
            "hits": self.hits,
            "misses": self.misses,
            "bytes_from_upstream": self.bytes_from_upstream,
            "evictions": self.evictions,
            "passed_through": self.passed_through,
            "cached_blocks": len(self.entries),
            "cached_bytes": self.cached_bytes,
        }


@dataclass
class _Transient:
    """A block served without being cached; its file goes when the last response using it is done."""

    path: str
    info: BlockInfo
    users: int = 0

    def acquire(self) -> BlockFile:
        self.users += 1

        def done() -> None:
            self.users -= 1
            if self.users == 0:
                with _suppress():
                    os.unlink(self.path)

        return BlockFile(self.path, self.info, os.stat(self.path), done)


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:200]


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(FileNotFoundError)
