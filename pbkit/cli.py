"""The `pbkit` command line.

Core store commands live in `pbkit.cli_store`; other areas add their own command groups through
a `register(app)` function in their CLI module. Only this module (not pbkit's core) reaches into
`delivery` and `learning`, so the layers keep pointing one way.
"""

from __future__ import annotations

import importlib
import sys

from dataclasses import dataclass
from pathlib import Path

import platformdirs
import typer

from pbkit.errors import PbkitError

# Modules that add commands to the app, in help order.
COMMAND_MODULES = (
    "pbkit.cli_store",   # ingest, assemble, verify, stats, ls, show, gc, rm, need
    "pbkit.cli_zoo",     # zoo build, library export, report
    "pbkit.cli_plan",    # plan
    "delivery.cli",      # sim run, sim compare
    "learning.cli",      # learn train, learn eval, learn report
)


@dataclass
class CliContext:
    """What the global options decide; sub-commands read it from `ctx.obj`."""

    store_dir: Path


def default_store_dir() -> Path:
    return Path(platformdirs.user_cache_dir("pbkit")) / "store"


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="pbkit",
        help="Parameter-block store, model zoos, CoMP caching simulator and learner.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def global_options(
        ctx: typer.Context,
        store: Path = typer.Option(
            None,
            "--store",
            envvar="PBKIT_STORE",
            help="Store directory (default: $PBKIT_STORE, else the user cache directory).",
        ),
    ) -> None:
        ctx.obj = CliContext(store_dir=Path(store) if store else default_store_dir())

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # area not built yet; any other missing import is a bug
                continue
            raise
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    app = build_app()
    try:
        # With standalone_mode=False click returns a typer.Exit code instead of raising it.
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except PbkitError as exc:
        print(f"pbkit: error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("pbkit: aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
