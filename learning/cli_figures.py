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
    seeds: str = typer.Option(
        "10", "--seeds", help="Seeds per point, the same for every series: N (0..N-1), A-B or A,B,C."
    ),
    slots: int = typer.Option(2, "--slots", min=1, help="Slots per run."),
    quick: bool = typer.Option(
        False, "--quick", help="Two points per axis, two series, 2 seeds, 1 slot (a smoke run)."
    ),
    panels: Optional[str] = typer.Option(
        None, "--panels", help="Comma-separated subset: capacity,users,antennas,power,csi,zipf."
    ),
    learn_results: Optional[Path] = typer.Option(
        None, "--learn-results", help="results.json of `pbkit learn report` for the learning curves."
    ),
    scenario: Optional[str] = typer.Option(
        None,
        "--scenario",
        help="Scenario: a YAML/TOML file, or a bundled name such as 'default' or 'small' (delivery/scenarios/).",
    ),
    config: Optional[str] = typer.Option(None, "--config", hidden=True, help="Deprecated: use --scenario."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting in every sweep: key=value (repeatable)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Parallel cells (default: all CPUs)."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster."),
) -> None:
    """Run the sweeps of the figure set on Ray and draw them (resumable; see docs/experiments.md)."""
    from delivery.cli import load_library_arg, scenario_source
    from delivery.config import ScenarioConfig
    from delivery.errors import ConfigError
    from learning.figures import PANELS, FigurePlan, run_figures
    from pbkit.common.seeds import parse_seeds

    seed_list = parse_seeds(seeds, "--seeds")
    source = scenario_source(scenario, config)

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
    names = tuple(p.name for p in PANELS)
    chosen = tuple(s.strip() for s in panels.split(",")) if panels else names
    bad = [c for c in chosen if c not in names]
    if bad:
        raise ConfigError(f"--panels {bad[0]}: not one of {', '.join(names)}")
    if quick:
        seed_list, slots = seed_list[:2], 1
    base = ScenarioConfig.build(source, set_)
    plan = FigurePlan(
        libraries=libs,
        out=out,
        seeds=seed_list,
        slots=slots,
        quick=quick,
        config=base,
        build_config=lambda extra: ScenarioConfig.build(source, [*set_, *extra]),
        panels=chosen,
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
