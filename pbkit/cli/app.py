"""The `pbkit` command line.

Core store commands live in `pbkit.cli.store`; other areas add their own command groups through
a `register(app)` function in their CLI module. Only this module (not pbkit's core) reaches into
`delivery` and `learning`, so the layers keep pointing one way.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import typer

from pbkit.errors import PbkitError

# Modules that add commands to the app, in help order.
COMMAND_MODULES = (
    "pbkit.cli.store",  # ingest, assemble, verify, stats, ls, show, gc, rm, need
    "pbkit.cli.zoo",  # zoo build, library export, report
    "pbkit.cli.plan",  # plan
    "pbkit.cli.serve",  # serve, pull (the net extra, imported when they run)
    "delivery.cli",  # sim run, sim compare
    "learning.cli",  # learn train, learn eval, learn report
    "delivery.cli_sweep",  # sweep (on Ray)
    "learning.cli_figures",  # figures
)


@dataclass
class CliContext:
    """What the global options decide; sub-commands read it from `ctx.obj`."""

    store_dir: Path


def default_store_dir() -> Path:
    import platformdirs  # only when no --store / $PBKIT_STORE is given (start-up time)

    return Path(platformdirs.user_cache_dir("pbkit")) / "store"


def _print_version(value: bool) -> None:
    if value:
        from pbkit import __version__

        print(f"pbkit {__version__}")
        raise typer.Exit(0)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="pbkit",
        help="Parameter-block store, model zoos, CoMP caching simulator and learner.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain help: typer's rich help renderer alone costs ~0.1 s of start-up
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
        version: bool = typer.Option(
            False, "--version", is_eager=True, callback=_print_version, help="Print pbkit's version and exit."
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


def _one_line(text: str) -> str:
    """Collapse a message onto one line (click words some of its errors over several lines)."""
    return " ".join(str(text).split())


def _usage_message(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return _one_line(f"{where}{exc.format_message()}{hint}")


# Where pbkit's metadata does not list a package (a source tree that is not installed, or installed
# before the extra existed), the extra that brings it.
_EXTRA_OF = {"starlette": "net", "uvicorn": "net", "httpx": "net", "httpcore": "net", "h11": "net", "anyio": "net"}


def _missing_extra_message(module: str) -> str:
    """`scipy is not installed; this command needs pbkit[sim] ...`, the extra read from pbkit's metadata."""
    import re
    from importlib import metadata

    top = module.split(".")[0]
    extras = []
    try:
        for req in metadata.requires("pbkit") or []:
            m = re.match(r"\s*([A-Za-z0-9_.-]+).*extra\s*==\s*['\"]([\w-]+)['\"]", req)
            if m and re.sub(r"[-_.]+", "_", m.group(1)).lower() == top.lower() and m.group(2) != "all":
                extras.append(m.group(2))
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        pass
    if not extras and top.lower() in _EXTRA_OF:
        extras.append(_EXTRA_OF[top.lower()])
    wanted = " or ".join(f"'pbkit[{e}]'" for e in dict.fromkeys(extras)) or "'pbkit[all]'"
    return f"{top}: not installed; this command needs it: pip install {wanted} ('pbkit[all]' installs everything)"


def _one_line_deprecations(previous):
    """`warnings.showwarning` that prints a settings deprecation (an old key name in a file) as
    one line and hands any other warning to `previous`."""
    from pbkit.common.settings import SettingsDeprecationWarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SettingsDeprecationWarning):
            print(f"pbkit: warning: {message}", file=sys.stderr)
            return
        previous(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run the `pbkit` command line; return its exit code.

    Exit codes (docs/cli.md): 0 success; 2 a usage or input error (unknown command or option, a
    missing or malformed value, a PbkitError: bad file, not a store, unknown model); 1 a runtime
    failure (an OSError such as a full disk, a corrupt store found by `verify`, a PbkitError whose
    class sets `exit_code = 1`, a package of an extra that is not installed); 130 interrupted (one
    line, `pbkit: interrupted`). Every error is one line on stderr,
    `pbkit: error: <file or value>: <problem>`; a traceback means a bug in pbkit.
    """
    try:
        app = build_app()
        # With standalone_mode=False click returns a typer.Exit code instead of raising it.
        with warnings.catch_warnings():  # restores the previous warning display on the way out
            warnings.showwarning = _one_line_deprecations(warnings.showwarning)
            rv = app(args=argv, prog_name="pbkit", standalone_mode=False)
        if rv == 130:  # typer turns Ctrl-C into a silent Exit(130); pbkit never exits 130 itself
            print("pbkit: interrupted", file=sys.stderr)
        if isinstance(rv, int):
            return rv
    except PbkitError as exc:
        print(f"pbkit: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C while the app is built, or an aborted prompt
        print("pbkit: interrupted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # click's own errors (typer vendors click as typer._click)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `pbkit` or `pbkit sim` alone: the help text
            text = exc.format_message()  # empty when typer's rich help has printed it already
            if text.strip():
                print(text, file=sys.stderr)
            return 2
        print(f"pbkit: error: {_usage_message(exc)}", file=sys.stderr)
        # Usage errors carry exit code 2; click's other errors (a file it could not open) are
        # input errors too.
        return 2
    except ModuleNotFoundError as exc:  # an area whose extra is not installed (pbkit[sim], ...)
        if exc.name is None or exc.name.split(".")[0] in ("pbkit", "delivery", "learning"):
            raise  # a missing module of pbkit itself is a bug, not an install choice
        print(f"pbkit: error: {_missing_extra_message(exc.name)}", file=sys.stderr)
        return 1
    except OSError as exc:  # an expected failure of the machine (disk full, permission denied)
        where = exc.filename if exc.filename is not None else "pbkit"
        print(f"pbkit: error: {where}: {_one_line(exc.strerror or str(exc))}", file=sys.stderr)
        return 1
    return 0
