"""Zoo commands: `zoo build`, `library export|check|synthetic`, `report`.

The store directory comes from the global `--store DIR` option (`ctx.obj.store_dir`). Progress
goes to stderr, `--json` output to stdout alone. Errors are PbkitError (one line, exit 2).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, List, Optional

import typer

from pbkit.common.progress import console as make_console
from pbkit.common.sizes import size_option
from pbkit.errors import PbkitError


class CliUsageError(PbkitError, ValueError):
    """A zoo/library/report command was called with conflicting or missing options."""


def check_granularity(granularity: str, max_bytes: int | None) -> None:
    """`--granularity` and `--max-bytes` agree (checked before any work, worded in option names).

    Raises CliUsageError.
    """
    from pbkit.library.grouping import GRANULARITIES

    if granularity not in GRANULARITIES:
        raise CliUsageError(f"--granularity {granularity!r}: not one of {', '.join(GRANULARITIES)}")
    if granularity == "fixed" and max_bytes is None:
        raise CliUsageError("--granularity fixed needs --max-bytes SIZE (the largest PB, e.g. 64MiB)")
    if granularity != "fixed" and max_bytes is not None:
        raise CliUsageError(f"--max-bytes applies only to --granularity fixed, not {granularity!r}")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")


def _open_store(ctx: typer.Context, create: bool = False) -> Any:
    """The global --store; only `zoo build` (which writes) may create it."""
    from pbkit.store import Store

    return Store.open(ctx.obj.store_dir, create=create)


def _default_zoo_dir(spec_name: str) -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("pbkit")) / "zoos" / spec_name


def register(app: typer.Typer) -> None:
    zoo_app = typer.Typer(help="Build model zoos: real fine-tunes and PEFT adapters from a spec.", no_args_is_help=True)
    lib_app = typer.Typer(help="The PB library: export from the store, check, synthesise.", no_args_is_help=True)
    app.add_typer(zoo_app, name="zoo")
    app.add_typer(lib_app, name="library")

    @zoo_app.command("build")
    def zoo_build(
        ctx: typer.Context,
        spec: str = typer.Argument(..., help="Spec file (YAML/TOML), or a packaged spec name such as 'default'."),
        out: Optional[Path] = typer.Option(
            None, "--out", help="Zoo directory (default: user cache dir/zoos/<spec name>)."
        ),
        only: Optional[List[str]] = typer.Option(None, "--only", help="Build only these models (and their bases)."),
        as_json: bool = typer.Option(False, "--json", help="Print the build result as JSON."),
    ) -> None:
        """Train every model of SPEC for real, save it under the zoo dir, ingest it into the store.
        Models whose directory and store entry match the spec are reused."""
        from pbkit.common.progress import Progress
        from pbkit.zoo.builder import ZooEvent, build_zoo
        from pbkit.zoo.spec import load_spec

        zspec = load_spec(spec)
        zoo_dir = out if out is not None else _default_zoo_dir(zspec.name)
        console = make_console(stderr=True)
        # On a terminal a bar; otherwise plain "model: i/n (x %), elapsed" lines every few seconds
        # while a model trains, and one line per finished model below.
        with (
            _open_store(ctx, create=True) as store,
            Progress(console=console) as bar,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            task = bar.add_task(f"zoo {zspec.name}", total=len(zspec.model_names()) if not only else None)

            def progress(ev: ZooEvent) -> None:
                if ev.phase == "start":
                    bar.update(task, description=f"{ev.model}", total=ev.total)
                else:
                    bar.update(task, completed=ev.index + 1)
                    if not console.is_terminal and not as_json:
                        console.print(f"[{ev.index + 1}/{ev.total}] {ev.model}: {ev.status} ({ev.seconds:.1f} s)")

            result = build_zoo(zspec, zoo_dir, store, progress=progress, only=set(only) if only else None)
        for w in caught:
            if issubclass(w.category, UserWarning) and "pbkit" in str(w.filename):
                console.print(f"warning: {w.message}")
        if as_json:
            _print_json(result.to_dict())
            return
        counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts().items()))
        make_console().print(
            f"zoo {zspec.name}: {len(result.models)} models in {result.zoo_dir} ({counts}) in {result.seconds:.1f} s"
        )

    @lib_app.command("export")
    def library_export(
        ctx: typer.Context,
        out: Path = typer.Option(..., "--out", help="Library JSON file to write."),
        granularity: str = typer.Option("tensor", "--granularity", help="tensor | layer | fixed"),
        # SIZE options arrive as int bytes (pbkit.common.sizes.size_option parses them)
        max_bytes: Optional[str] = size_option(
            None, "--max-bytes", help="PB size limit, needed by --granularity fixed"
        ),
        files: str = typer.Option("model", "--files", help="Non-tensor bytes: model (one PB per model) | each | none"),
        model: Optional[List[str]] = typer.Option(None, "--model", help="Export only these models (and their bases)."),
        as_json: bool = typer.Option(False, "--json", help="Print the sharing figures as JSON."),
    ) -> None:
        """Export the store's models as a PB library (docs/library-format.md)."""
        from pbkit.library.export import export_library

        check_granularity(granularity, max_bytes)
        with _open_store(ctx) as store:
            lib = export_library(store, granularity=granularity, max_bytes=max_bytes, files=files, models=model)
        lib.save(out)
        _report_library(lib, out, as_json)

    @lib_app.command("check")
    def library_check(
        path: Path = typer.Argument(..., help="Library JSON file."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Load and validate a PB library; print its sharing figures."""
        from pbkit.library import load_library

        _report_library(load_library(path), path, as_json)

    @lib_app.command("describe")
    def library_describe(
        spec: str = typer.Argument(..., help="Library JSON, 'synthetic' or a shipped name (llama-2-lora, ...)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Models, unique and logical bytes, sharing-degree histogram, largest PB."""
        from pbkit.library import describe, describe_text, resolve_library

        desc = describe(resolve_library(spec))
        _print_json(desc) if as_json else typer.echo(describe_text(desc))

    @lib_app.command("synthetic")
    def library_synthetic(
        out: Path = typer.Option(..., "--out"),
        seed: int = typer.Option(0, "--seed"),
        families: int = typer.Option(2, "--families"),
        models_per_family: int = typer.Option(6, "--models-per-family"),
        base_pbs: int = typer.Option(12, "--base-pbs"),
        own_pbs: int = typer.Option(4, "--own-pbs"),
        shared_fraction: float = typer.Option(0.7, "--shared-fraction"),
        mean_pb_bytes: str = size_option("8MB", "--mean-pb-bytes", help="Mean PB size"),
        sigma: float = typer.Option(0.5, "--sigma", help="Log-normal sigma of PB sizes."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Write a synthetic library (marked synthetic) for tests and sweeps."""
        import numpy as np

        from pbkit.library import synthetic_library

        lib = synthetic_library(
            np.random.default_rng(seed),
            families=families,
            models_per_family=models_per_family,
            base_pbs=base_pbs,
            own_pbs=own_pbs,
            shared_fraction=shared_fraction,
            mean_pb_bytes=mean_pb_bytes,
            sigma=sigma,
        )
        lib.source["seed"] = seed
        lib.save(out)
        _report_library(lib, out, as_json)

    @app.command("report")
    def report(
        ctx: typer.Context,
        out: Path = typer.Option(..., "--out", help="Directory for report.json and the plots."),
        zoo: Optional[Path] = typer.Option(None, "--zoo", help="Measure the model directories of this zoo."),
        from_store: bool = typer.Option(False, "--store", help="Measure the models of the store (global --store DIR)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the PNG plots."),
    ) -> None:
        """Dedup report: logical, whole-file, tensor-PB, 64 KiB CDC and dtype-canonical bytes."""
        from pbkit.zoo.report import dedup_report, render_models_table, render_notes, render_table, write_report
        from pbkit.zoo.scan import scan_store, scan_zoo

        if (zoo is None) == (not from_store):
            raise CliUsageError("report: give exactly one of --zoo DIR or --store")
        if zoo is not None:
            models, source = scan_zoo(zoo)
            rep = dedup_report(models, source, origin=f"zoo {zoo}")
        else:
            with _open_store(ctx) as store:
                models, source = scan_store(store)
                rep = dedup_report(models, source, origin=f"store {store.root}")
        written = write_report(rep, out, plots=plots)
        if as_json:
            _print_json(rep.to_dict())
            return
        console = make_console()
        console.print(render_table(rep))
        console.print(render_notes(rep))
        console.print(render_models_table(rep))
        console.print("wrote " + ", ".join(str(p) for p in written))


def _report_library(lib: Any, path: Path, as_json: bool) -> None:
    sharing = lib.sharing()
    if as_json:
        _print_json({"path": str(path), "granularity": lib.granularity, "synthetic": lib.synthetic, **sharing})
        return
    make_console().print(
        f"{path}: {sharing['models']} models, {sharing['pbs']} PBs ({lib.granularity}{', synthetic' if lib.synthetic else ''}); "
        f"logical {sharing['logical_bytes'] / 1e6:,.1f} MB, unique {sharing['unique_bytes'] / 1e6:,.1f} MB, "
        f"dedup {sharing['dedup_ratio']:.2f}x, {sharing['pbs_shared_by_2_or_more']} PBs shared by >= 2 models"
    )
