"""`pbkit figures`: the figure set (learning/figures.py), mounted by pbkit/cli/app.py."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

# label -> spec; the demo zoo's library is used only if `make demo` built it
DEFAULT_LIBRARIES = {"zoo": ".pbkit-demo/library.json", "llama-2-lora": "llama-2-lora"}


def figures_command(
    out: Path = typer.Option(..., "--out", help="Directory for the figures, figures.json, README.md and data/."),
    library: list[str] = typer.Option(
        [],
        "--library",
        help="LABEL=SPEC or SPEC (repeatable): a library file, "
        "'synthetic' or a shipped name. Default: the demo zoo's library (if built) and llama-2-lora.",
    ),
    config: Optional[str] = typer.Option(
        None, "--config", help="Figure plan: a YAML/TOML file, or 'quick' / 'full' (learning/plans/figures/)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Alias of --config quick: two points per axis, two series, 2 seeds, 1 slot."
    ),
    scenario: Optional[str] = typer.Option(
        None,
        "--scenario",
        help="Scenario of every sweep: a file or bundled name (delivery/scenarios/); its keys override the plan's.",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Plan key=value override (repeatable); scenario.<field>=value for the scenario."
    ),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="= --set seeds=...: N (0..N-1), A-B or A,B,C."),
    slots: Optional[str] = typer.Option(None, "--slots", help="= --set slots=... (slots per run)."),
    panels: Optional[str] = typer.Option(
        None, "--panels", help="= --set panels=...: a subset of capacity,users,antennas,power,csi,zipf."
    ),
    learn_results: Optional[Path] = typer.Option(
        None, "--learn-results", help="results.json of `pbkit learn report` for the learning curves."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Parallel cells (default: all CPUs)."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster."),
) -> None:
    """Run the sweeps of the figure set on Ray and draw them (resumable; see docs/experiments.md)."""
    from delivery.cli import load_library_arg
    from learning.config import settings_from_options
    from learning.figures import FigurePlan, FigureSettings, run_figures

    shortcuts = {"--seeds": ("seeds", seeds), "--slots": ("slots", slots), "--panels": ("panels", panels)}
    settings = settings_from_options(
        FigureSettings,
        quick=quick,
        config=config,
        scenario=scenario,
        overrides=set_,
        shortcuts=shortcuts,
        old_meaning=(_is_scenario, "a scenario, not a figure plan: use --scenario"),
    )

    specs = list(library) or [
        f"{label}={spec}" for label, spec in DEFAULT_LIBRARIES.items() if label != "zoo" or Path(spec).exists()
    ]
    libs = {}
    for item in specs:
        label, sep, spec = item.partition("=")
        if not sep:
            label, spec = (
                (
                    Path(item).parent.name.lstrip(".").removeprefix("pbkit-") or Path(item).stem
                    if item.endswith(".json")
                    else item
                ),
                item,
            )
        libs[label] = load_library_arg(spec)
    plan = FigurePlan(
        libraries=libs,
        out=out,
        settings=settings,
        learn_results=learn_results,
        learn_note=_provenance(learn_results),
        workers=workers,
        address=address,
        command="pbkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    data = run_figures(plan, log=lambda m: typer.echo(m, err=True))
    typer.echo(
        f"{out}: {len(data['panels'])} panels on {', '.join(libs)}, {data['computed']} cells computed "
        f"({data['wall_s']:.0f} s); README.md, figures.json"
    )
    for note in data["notes"]:
        typer.echo(f"  note: {note}")


def _is_scenario(source: str) -> bool:
    from delivery.config import scenario_keys
    from pbkit.errors import PbkitError

    try:
        scenario_keys(source)
    except PbkitError:
        return False
    return True


def _provenance(path: Optional[Path]) -> str:
    """' (made <date>; committed <date>, <commit>: <subject>)' from the results file's own `date`
    and git, whichever are known, else ''. The file's mtime is only the checkout's."""
    if path is None:
        return ""
    import json
    import subprocess

    parts = []
    try:
        made = json.loads(path.read_text()).get("date")
    except (OSError, ValueError, AttributeError):
        made = None
    if made:
        parts.append(f"made {made}")
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs, %h: %s", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    if out:
        parts.append(f"committed {out}")
    return f" ({'; '.join(parts)})" if parts else ""


def register(app: typer.Typer) -> None:
    app.command("figures")(figures_command)
