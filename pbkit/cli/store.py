"""Store commands: ingest, digest, assemble, verify, stats, ls, show, gc, rm, need.

The store directory comes from the global `--store` option (`ctx.obj.store_dir`). Progress bars
and warnings go to stderr; `--json` output goes to stdout alone so scripts can parse it.
Errors are PbkitError, printed by pbkit.cli as one line `pbkit: error: ...`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

import typer

from pbkit.common.progress import Progress, console
from pbkit.common.sizes import format_size

if TYPE_CHECKING:  # the store and rich's tables are imported by the commands that use them (start-up time)
    from rich.console import Console
    from rich.table import Table

    from pbkit.store import Store

_PHASES = {
    "hash": "hashing",
    "write": "writing",
    "publish": "publishing",
    "assemble": "assembling",
    "verify": "verifying",
}


def _err() -> Console:
    return console(stderr=True)


def _out() -> Console:
    return console()


@contextlib.contextmanager
def _progress(enabled: bool = True) -> Iterator[Any]:
    """A progress(phase, done, total) callback: one bar per phase on a terminal, plain lines otherwise."""
    if not enabled:
        yield None
        return
    with Progress(unit="B") as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _store(ctx: typer.Context, create: bool = False) -> Store:
    """The global --store; only writing commands (ingest) may create it."""
    from pbkit.store import Store

    return Store.open(ctx.obj.store_dir, create=create)


def _table(**options: Any) -> Table:
    from rich.table import Table

    return Table(**options)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


def register(app: typer.Typer) -> None:
    @app.command()
    def ingest(
        ctx: typer.Context,
        path: str = typer.Argument(..., help="Model directory, or a hub id (org/name)."),
        name: Optional[str] = typer.Option(
            None, "--name", help="Name in the store (default: directory name or hub id)."
        ),
        base: Optional[str] = typer.Option(None, "--base", help="Stored model this one derives from."),
        revision: Optional[str] = typer.Option(None, "--revision", help="Hub revision (branch, tag or commit)."),
        delta: bool = typer.Option(
            False, "--delta", help="Store tensors that differ from the base chain's as lossless delta blocks."
        ),
        delta_min_saving: float = typer.Option(
            0.10, "--delta-min-saving", help="Keep a delta block only if it saves at least this fraction."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Cut a model (or adapter) into parameter blocks and store them."""
        from pbkit.store.references import DeltaPolicy

        policy = DeltaPolicy(delta_min_saving) if delta else None  # checked before the store is opened
        with _store(ctx, create=True) as store, _progress() as progress, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = store.ingest(path, name=name, base=base, revision=revision, progress=progress, delta=policy)
        for w in caught:
            print(f"pbkit: warning: {w.message}", file=sys.stderr)
        if as_json:
            _print_json(result.to_dict())
            return
        state = (
            "already stored, unchanged"
            if result.unchanged
            else f"{result.new_objects} new objects, {format_size(result.new_bytes)} written"
        )
        base_s = f", base {result.base}" if result.base else ""
        if result.delta_tensors:
            state += f"; {result.delta_tensors} tensors ({format_size(result.delta_tensor_bytes)}) stored as deltas"
        _out().print(
            f"ingested [bold]{result.name}[/] ({result.kind}{base_s}): {result.files} files, "
            f"{result.blocks} blocks, {format_size(result.logical_bytes)}; {state}; recipe {result.recipe_id[:16]}"
        )

    @app.command()
    def digest(
        path: str = typer.Argument(..., help="Model directory, or a hub id."),
        revision: Optional[str] = typer.Option(None, "--revision"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Dry run: compute every PB id of a model, write nothing."""
        with _progress() as progress:
            from pbkit.store.ingest import digest_pass

            report = digest_pass(path, revision=revision, progress=progress)
        if as_json:
            d = report.to_dict()
            d["files"] = [
                {
                    "path": f.recipe.path,
                    "size": f.recipe.size,
                    "kind": f.recipe.kind,
                    "blocks": [bid for bid, _ in f.sources],
                }
                for f in report.files
            ]
            _print_json(d)
            return
        _out().print(
            f"{report.root}: {len(report.files)} files, {report.tensors} tensors, {report.blocks} distinct blocks "
            f"({format_size(report.block_bytes)} of {format_size(report.file_bytes)}), {report.throughput / 1e9:.2f} GB/s"
        )

    @app.command()
    def assemble(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Stored model name."),
        out: Path = typer.Option(..., "--out", help="Output directory (must not exist, or be empty)."),
        from_blocks: Optional[Path] = typer.Option(
            None, "--from-blocks", help="Directory of received blocks (<id> or <id>.pb files) instead of the store."
        ),
        deep: bool = typer.Option(
            False, "--deep", help="Also re-compute every rebuilt file's SHA-256 and check it against the recipe."
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Rebuild a model directory bit-exactly (verified before it is renamed into place)."""
        from pbkit.store.assemble import AssemblyError

        with _store(ctx) as store, _progress() as progress:
            try:
                report = store.assemble(name, out, from_blocks=from_blocks, progress=progress, deep=deep)
            except AssemblyError as exc:
                if exc.unavailable:
                    console = _err()
                    table = _table(title="unavailable blocks", title_justify="left")
                    for col in ("block id", "bytes", "reason", "tensors"):
                        table.add_column(col)
                    for b in exc.unavailable:
                        table.add_row(b.id, str(b.nbytes), b.reason, ", ".join(b.tensors))
                    console.print(table)
                raise
        if as_json:
            _print_json(report.to_dict())
            return
        checked = "every block and every file's SHA-256 verified" if deep else "every block verified against its id"
        _out().print(
            f"assembled [bold]{report.name}[/] into {report.out_dir}: {report.files} files, "
            f"{format_size(report.bytes)}, {checked} ({report.seconds:.2f} s)"
        )

    @app.command()
    def verify(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """Re-hash every object; name each corrupt or missing one (non-zero exit if any)."""
        with _store(ctx) as store, _progress() as progress:
            report = store.verify(progress=progress)
        if as_json:
            _print_json(report.to_dict())
        else:
            for p in report.problems:
                print(p, file=sys.stderr)
            _out().print(
                f"verified {report.checked} objects ({format_size(report.bytes)}): "
                + (
                    "clean"
                    if report.ok
                    else f"{len(report.corrupt)} corrupt, {len(report.missing)} missing"
                    + (f", {len(report.missing_bases)} models without their base" if report.missing_bases else "")
                    + f"; models hit: {', '.join(report.models_hit)}"
                )
                + (
                    f"; {report.unreferenced_objects} unreferenced objects and {report.temp_files} temp files (gc removes them)"
                    if report.unreferenced_objects or report.temp_files
                    else ""
                )
            )
        if not report.ok:
            # A PbkitError (not typer.Exit, whose code pbkit.cli.main drops) gives a non-zero exit.
            from pbkit.store import StoreCorruptError

            raise StoreCorruptError(
                f"{store.root}: {len(report.corrupt)} corrupt and {len(report.missing)} missing objects"
                + (f", models without their base: {', '.join(report.missing_bases)}" if report.missing_bases else "")
                + " "
                f"(models hit: {', '.join(report.models_hit) or 'none'})"
            )

    @app.command()
    def stats(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """Store totals: models, blocks, logical and unique bytes."""
        with _store(ctx) as store:
            s = store.stats()
        if as_json:
            _print_json(s)
            return
        table = _table(show_header=False)
        for k, v in s.items():
            table.add_row(k, f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
        _out().print(table)

    @app.command("ls")
    def ls(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """List stored models."""
        with _store(ctx) as store:
            rows = store.index.models()
        if as_json:
            _print_json(
                [
                    {
                        "name": r.name,
                        "kind": r.kind,
                        "base": r.base,
                        "logical_bytes": r.logical_bytes,
                        "recipe_id": r.recipe_id,
                        "source": r.source,
                        "created": r.created,
                    }
                    for r in rows
                ]
            )
            return
        table = _table()
        for col in ("name", "kind", "base", "size", "recipe"):
            table.add_column(col)
        for r in rows:
            table.add_row(r.name, r.kind, r.base or "", format_size(r.logical_bytes), r.recipe_id[:16])
        _out().print(table)

    @app.command()
    def show(
        ctx: typer.Context, name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")
    ) -> None:
        """Show one model: kind, base, source, files and bytes shared with other models."""
        with _store(ctx) as store:
            info = store.model_info(name)
        if as_json:
            _print_json(info)
            return
        out = _out()
        out.print(f"[bold]{info['name']}[/]  {info['kind']}  recipe {info['recipe_id']}")
        if info["base"]:
            out.print(
                f"base: {info['base']['name']} (recipe {info['base']['recipe_id'][:16]}, content {info['base']['content_digest'][:16]})"
            )
        out.print(f"source: {json.dumps(info['source'])}")
        out.print(f"{len(info['files'])} files, {format_size(info['logical_bytes'])}, {info['blocks']} distinct blocks")
        table = _table()
        for col in ("file", "kind", "size", "tensors", "sha256"):
            table.add_column(col)
        for f in info["files"]:
            table.add_row(f["path"], f["kind"], f"{f['size']:,}", str(f["tensors"]), f["sha256"][:16])
        out.print(table)
        for other, nbytes in info["shared_bytes_with"].items():
            out.print(f"shares {format_size(nbytes)} with {other}")

    @app.command()
    def gc(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """Delete unreferenced objects and stale temporary files."""
        with _store(ctx) as store:
            report = store.gc()
        if as_json:
            _print_json(report.to_dict())
            return
        _out().print(
            f"removed {report.removed_objects} objects ({format_size(report.removed_bytes)}) and {report.removed_temp_files} temp files"
        )

    @app.command("rm")
    def rm(
        ctx: typer.Context,
        name: str = typer.Argument(...),
        cascade: bool = typer.Option(
            False, "--cascade", help="Also remove the models built on this one (adapters, fine-tunes)."
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Remove a model from the index (its unshared blocks are deleted by gc); refused while
        other models are built on it, unless --cascade."""
        with _store(ctx) as store:
            dependants = store.dependants(name) if cascade else []
            freed = store.remove(name, cascade=cascade)
        if as_json:
            _print_json({"removed": name, "removed_dependants": dependants, "unreferenced_blocks": freed})
            return
        also = f" and the models built on it: {', '.join(dependants)}" if dependants else ""
        _out().print(f"removed {name}{also}; {freed} blocks are now unreferenced (run gc to delete them)")

    @app.command()
    def need(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Requested model."),
        have: Optional[List[str]] = typer.Option(
            None, "--have", help="Stored model(s) whose blocks the device holds (repeatable, or comma-separated)."
        ),
        have_blocks: Optional[Path] = typer.Option(None, "--have-blocks", help="Directory of blocks the device holds."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list every needed block."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Which blocks (and bytes) a device still needs for a model and its whole base chain
        (the block table with --verbose)."""
        with _store(ctx) as store:
            held: set[str] = set()
            for value in have or []:
                for m in filter(None, (x.strip() for x in value.split(","))):
                    held |= store.model_blocks(m)
            if have_blocks is not None:
                held |= store.held_blocks(have_blocks)
            report = store.need(name, held)
        if as_json:
            _print_json(report.to_dict())
            return
        out = _out()
        out.print(
            f"[bold]{name}[/]"
            + (f" (with {', '.join(report.extra['chain'][1:])})" if len(report.extra["chain"]) > 1 else "")
            + f": needs {len(report.needed)} of {report.total_blocks} blocks, "
            f"{format_size(report.needed_bytes)} of {format_size(report.total_bytes)} (holds {format_size(report.have_bytes)})"
        )
        if not verbose:
            return
        table = _table()
        for col in ("block id", "bytes", "kind", "tensors"):
            table.add_column(col)
        for b in report.needed:
            table.add_row(
                b.id[:16], f"{b.nbytes:,}", b.kind, ", ".join(b.tensors[:3]) + (" ..." if len(b.tensors) > 3 else "")
            )
        out.print(table)


__all__ = ["register"]
