"""The HTTP app of `pbkit serve` (starlette), and the origin backend that serves a store read-only.

The routes (pbkit.net.protocol) are the same for an origin and an edge; a backend answers them.
Every request is answered from the event loop's thread (the store's SQLite connection is opened
there, in the app's lifespan), blocks are streamed from their files by starlette's FileResponse
(Range, HEAD) in 1 MiB reads. No path reaches a file by name: a block is looked up by its
validated id in the store's index, and a model by name in the index.
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Protocol

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pbkit.net import protocol
from pbkit.store.recipe import BlockInfo

_READ_CHUNK = 1 << 20  # starlette's default 64 KiB reads cost a thread hop each; 1 MiB keeps loopback busy


class BlockFileResponse(FileResponse):
    chunk_size = _READ_CHUNK


class NotFound(Exception):
    """A model or block the backend does not have (answered 404)."""


class UpstreamFailed(Exception):
    """An edge's upstream failed or sent a bad block (answered 502)."""


@dataclass
class BlockFile:
    """A block ready to be sent: its file, what it is, and what to call when the response is done."""

    path: str
    info: BlockInfo
    stat: os.stat_result
    done: Callable[[], None] = lambda: None


@dataclass
class Counters:
    blocks_served: int = 0
    block_bytes_served: int = 0  # bytes of the block bodies sent (a Range counts its length)
    errors_4xx: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Backend(Protocol):
    role: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def models(self) -> list[dict[str, Any]]: ...

    async def recipe(self, name: str) -> tuple[bytes, str]:  # (recipe JSON, recipe id); NotFound
        ...

    async def block(self, block_id: str) -> BlockFile:  # NotFound, UpstreamFailed
        ...

    def stats(self) -> dict[str, Any]: ...


@dataclass
class OriginBackend:
    """Serves the store at `store_dir`, read-only (opened without create: it must exist)."""

    store_dir: Path
    role: str = "origin"
    store: Any = field(default=None, repr=False)

    async def start(self) -> None:
        from pbkit.store import Store

        self.store = Store.open(self.store_dir, create=False)

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()

    async def models(self) -> list[dict[str, Any]]:
        return [
            {
                "name": r.name,
                "kind": r.kind,
                "base": r.base,
                "recipe_id": r.recipe_id,
                "content_digest": r.content_digest,
                "logical_bytes": r.logical_bytes,
            }
            for r in self.store.index.models()
        ]

    async def recipe(self, name: str) -> tuple[bytes, str]:
        row = self.store.index.model(name)
        text = self.store.index.recipe_json(name)
        if row is None or text is None:
            raise NotFound(f"no model named {name!r}")
        return text.encode("utf-8"), row.recipe_id

    async def block(self, block_id: str) -> BlockFile:
        info = self.store.index.block(block_id)
        if info is None:
            raise NotFound(f"no block {block_id}")
        path = str(self.store.objects.path(block_id))
        try:
            st = os.stat(path)
        except FileNotFoundError:  # indexed but gone (a store that needs `verify`)
            raise NotFound(f"block {block_id} is indexed but its object is missing") from None
        if not stat_mod.S_ISREG(st.st_mode) or st.st_size != info.nbytes:
            raise NotFound(f"block {block_id}: its object is not the indexed size")
        return BlockFile(path, info, st)

    def stats(self) -> dict[str, Any]:
        return {}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(protocol.error_body(message), status_code=status)


def make_app(backend: Backend) -> Starlette:
    """The starlette app serving `backend` (see pbkit.net.protocol for the routes)."""
    counters = Counters()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "role": backend.role})

    async def models(request: Request) -> Response:
        return JSONResponse({"models": await backend.models()})

    async def recipe(request: Request) -> Response:
        name = request.path_params["name"]
        if not protocol.valid_name(name):
            return _error(400, f"{name[:80]!r} is not a model name")
        try:
            body, recipe_id = await backend.recipe(name)
        except NotFound as exc:
            return _error(404, str(exc))
        return Response(body, media_type="application/json", headers={"etag": f'"{recipe_id}"'})

    async def block(request: Request) -> Response:
        block_id = request.path_params["block_id"]
        if not protocol.valid_id(block_id):
            return _error(400, f"{block_id[:80]!r} is not a block id (64 lowercase hex digits)")
        try:
            bf = await backend.block(block_id)
        except NotFound as exc:
            return _error(404, str(exc))
        except UpstreamFailed as exc:
            return _error(502, str(exc))
        headers = {"etag": f'"{block_id}"', "cache-control": "public, max-age=31536000, immutable"}
        headers.update(protocol.block_headers(bf.info))
        counters.blocks_served += 1
        counters.block_bytes_served += _body_length(request, bf.info.nbytes)

        async def release() -> None:
            bf.done()

        if request.headers.get("if-none-match", "").strip() == f'"{block_id}"':
            bf.done()
            return Response(status_code=304, headers={"etag": f'"{block_id}"'})
        return BlockFileResponse(
            bf.path,
            stat_result=bf.stat,
            headers=headers,
            media_type="application/octet-stream",
            background=BackgroundTask(release),
        )

    async def stats(request: Request) -> Response:
        return JSONResponse({"role": backend.role, **counters.to_dict(), **backend.stats()})

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        counters.errors_4xx += exc.status_code < 500
        message = {404: "no such endpoint", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, f"{request.method} {request.url.path[:120]}: {message}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    routes = [
        Route(protocol.HEALTH, health, methods=["GET"]),
        Route(protocol.STATS, stats, methods=["GET"]),
        Route(protocol.MODELS, models, methods=["GET"]),
        Route(protocol.MODELS + "/{name:path}/recipe", recipe, methods=["GET"]),
        Route(protocol.BLOCKS + "/{block_id}", block, methods=["GET", "HEAD"]),
    ]

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: on_http_error})
    app.state.counters = counters
    app.state.backend = backend
    return app


def _body_length(request: Request, nbytes: int) -> int:
    """Bytes of a block's body this request asks for (a single Range counts its length; HEAD 0)."""
    if request.method == "HEAD":
        return 0
    spec = request.headers.get("range", "")
    if spec.startswith("bytes=") and "," not in spec:
        start, _, end = spec[6:].partition("-")
        try:
            if start:
                lo, hi = int(start), (int(end) if end else nbytes - 1)
                return max(0, min(hi, nbytes - 1) - lo + 1)
            return min(nbytes, int(end))
        except ValueError:
            return 0
    return nbytes
