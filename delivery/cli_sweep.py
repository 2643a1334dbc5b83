"""`pbkit sweep`: grid x policies x seeds on Ray, resumable (mounted by pbkit/cli/app.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from delivery.cli import (
    legacy_config_option,
    load_library_arg,
    scenario_label,
    scenario_option,
    scenario_source,
    seeds_option,
)
from delivery.errors import ConfigError
from delivery.interval import Interval
from pbkit.common.seeds import parse_seeds


def sweep_command(
    library: str = typer.Option(
        ..., "--library", help="PB library JSON, 'synthetic' or a shipped name (llama-2-lora, ...)."
    ),
    policies: str = typer.Option("lfu,greedy", "--policies", help="Comma-separated policy names."),
    seeds: str = seeds_option("2"),
    first_seed: int = typer.Option(0, "--first-seed", min=0, help="First seed of a count --seeds N."),
    slots: int = typer.Option(20, "--slots", min=1),
    grid: list[str] = typer.Option([], "--grid", help="key=v1,v2,... (repeatable): a scenario setting to sweep."),
    out: Path = typer.Option(..., "--out", help="Directory for results.csv, summary.json, cells.jsonl."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Parallel cells (default: all CPUs, or the cluster's)."
    ),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster (HOST:PORT or 'auto')."),
    scenario: Optional[str] = scenario_option(),
    config: Optional[str] = legacy_config_option(),
    set_: list[str] = typer.Option([], "--set", help="Override a setting for every cell: key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json."),
    requests: Optional[Path] = typer.Option(
        None, "--requests", help="Replay a request trace in every cell: CSV slot,user,model."
    ),
) -> None:
    """Run every (grid point, policy, seed) cell as a Ray task; rerun to resume."""
    from delivery.config import ScenarioConfig
    from delivery.sweep import build_sweep, parse_grid, run_sweep  # the simulator: when run, not at start-up

    seed_list = parse_seeds(seeds, "--seeds", first_seed)  # before Ray starts
    source = scenario_source(scenario, config)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise ConfigError("--policies names no policy")
    grid_values = parse_grid(grid)
    clash = sorted(set(grid_values) & {s.split("=", 1)[0].strip() for s in set_})
    if clash:
        raise ConfigError(f"--grid {clash[0]}: also given with --set")
    lib = load_library_arg(library)
    from delivery.cli_headroom import check_trace_length, with_requests_file

    def cell_config(extra: list[str]):
        cfg = with_requests_file(ScenarioConfig.build(source, [*set_, *extra], where="--grid/--set"), requests, lib)
        check_trace_length(cfg, slots, lib)
        return cfg

    sweep = build_sweep(
        cell_config,
        grid_values,
        names,
        seed_list,
        slots,
    )
    meta = {"command": {"library": library, "scenario": source, "set": list(set_), "grid": list(grid)}}
    report, summary = run_sweep(sweep, lib, out, workers=workers, address=address, meta=meta)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    typer.echo(
        f"{out}: library {library}, {scenario_label(source, set_)}: {report.total} cells, {report.computed} "
        f"computed, {report.skipped} already done ({report.wall_s:.1f} s); results.csv, summary.json"
    )
    for row in summary["rows"]:
        point = " ".join(f"{k}={row[k]}" for k in summary["grid_keys"])
        d = Interval.from_json(row["mean_delay_s"], f"{point} {row['policy']}")
        typer.echo(f"  {point:40s} {row['policy']:10s} {d.format('.4g')} s (n={d.n})")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
