"""Network commands: `pbkit serve` (an origin serving the store, or an edge cache) and `pbkit pull`.

The network stack (starlette, uvicorn, httpx: the `net` extra) is imported inside the commands,
so `pbkit` without that extra still runs every other command (docs/network.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from pbkit.common.sizes import format_size

DEFAULT_PORT = 8470


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
        port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port; 0 picks a free one (printed)."),
        upstream: Optional[str] = typer.Option(
            None, "--upstream", help="Edge mode: the origin (or edge) URL to fetch blocks from."
        ),
        capacity: Optional[str] = typer.Option(
            None, "--capacity", help="Edge mode: bytes of blocks to keep (64MiB, 1.5GB, ...)."
        ),
        policy: str = typer.Option("lru", "--policy", help="Edge mode: eviction policy, lru or lfu."),
        cache_dir: Optional[Path] = typer.Option(
            None, "--cache-dir", help="Edge mode: where cached blocks go (default: a temporary directory)."
        ),
    ) -> None:
        """Serve the store's models and blocks over HTTP, read-only (or, with --upstream, an edge cache)."""
        from pbkit.net.run import bind
        from pbkit.net.run import serve as run_server
        from pbkit.net.server import OriginBackend, make_app

        if not 0 <= port <= 65535:
            raise typer.BadParameter(f"{port} is not a TCP port", param_hint="--port")
        if upstream is not None:
            from pbkit.common.sizes import parse_size
            from pbkit.net.edge import EdgeBackend
            from pbkit.net.eviction import POLICIES

            if capacity is None:
                raise typer.BadParameter("edge mode needs --capacity SIZE", param_hint="--capacity")
            if policy not in POLICIES:
                raise typer.BadParameter(f"{policy!r} is not one of {', '.join(POLICIES)}", param_hint="--policy")
            if not upstream.startswith(("http://", "https://")):
                raise typer.BadParameter(f"{upstream!r} is not an http:// URL", param_hint="--upstream")
            backend = EdgeBackend(upstream, parse_size(capacity, what="--capacity"), policy, cache_dir)
            what = f"edge of {upstream} ({policy}, {format_size(backend.capacity)})"
        else:
            from pbkit.store import Store

            if capacity is not None or cache_dir is not None:
                raise typer.BadParameter("--capacity and --cache-dir are for an edge (with --upstream URL)")

            Store.open(ctx.obj.store_dir, create=False).close()  # a wrong --store fails now, not per request
            backend = OriginBackend(Path(ctx.obj.store_dir))
            what = f"store {ctx.obj.store_dir}"
        sock = bind(host, port)
        bound = sock.getsockname()

        def ready() -> None:
            print(f"serving {what} on http://{host}:{bound[1]} (Ctrl-C to stop)", flush=True)

        run_server(make_app(backend), sock, on_ready=ready)

    @app.command()
    def pull(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Model to pull (its base too, unless the store holds it)."),
        source: str = typer.Option(..., "--from", help="Server URL (pbkit serve, origin or edge)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the model bit-exactly into this directory."),
        workers: int = typer.Option(4, "--workers", min=1, max=64, help="Blocks fetched at once."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Fetch only the blocks the store lacks, verify each, register the model (resumable)."""
        from pbkit.cli.store import _progress
        from pbkit.net.pull import pull as do_pull
        from pbkit.store import Store

        with Store.open(ctx.obj.store_dir, create=True) as store, _progress() as progress:
            report = do_pull(store, source, name, out=out, workers=workers, progress=progress)
        if as_json:
            import json

            d = report.to_dict()
            keys = ("model", "fetched_blocks", "fetched_bytes", "skipped_bytes")
            sys.stdout.write(json.dumps({**{k: d[k] for k in keys}, **d}, indent=1) + "\n")
            return
        rate = report.fetched_bytes / report.seconds if report.seconds > 0 else 0.0
        also = f" (registered {', '.join(report.registered)})" if report.registered else " (already registered)"
        where = f"; written to {report.out_dir}" if report.out_dir else ""
        print(
            f"pulled {name}{also}: {report.fetched_blocks} blocks, {format_size(report.fetched_bytes)} fetched, "
            f"{format_size(report.skipped_bytes)} already held, {report.seconds:.2f} s "
            f"({format_size(rate)}/s){where}"
        )


__all__ = ["register"]
