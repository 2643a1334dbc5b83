"""`pbkit sweep`: grid x policies x seeds on Ray, resumable (mounted by pbkit/cli/app.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from delivery.cli import build_config, load_library_arg
from delivery.errors import ConfigError


def sweep_command(
    library: str = typer.Option(
        ..., "--library", help="PB library JSON, 'synthetic' or a shipped name (llama-2-lora, ...)."
    ),
    policies: str = typer.Option("lfu,greedy", "--policies", help="Comma-separated policy names."),
    seeds: int = typer.Option(2, "--seeds", min=1, help="Seeds 0..n-1 (or from --first-seed)."),
    first_seed: int = typer.Option(0, "--first-seed"),
    slots: int = typer.Option(20, "--slots", min=1),
    grid: list[str] = typer.Option([], "--grid", help="key=v1,v2,... (repeatable): a scenario setting to sweep."),
    out: Path = typer.Option(..., "--out", help="Directory for results.csv, summary.json, cells.jsonl."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="Parallel cells (default: all CPUs, or the cluster's)."
    ),
    address: Optional[str] = typer.Option(None, "--address", help="Join a running Ray cluster (HOST:PORT or 'auto')."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML/TOML scenario, or 'default'/'small'."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting for every cell: key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json."),
    requests: Optional[Path] = typer.Option(
        None, "--requests", help="Replay a request trace in every cell: CSV slot,user,model."
    ),
) -> None:
    """Run every (grid point, policy, seed) cell as a Ray task; rerun to resume."""
    from delivery.sweep import build_sweep, parse_grid, run_sweep  # the simulator: when run, not at start-up

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
        cfg = with_requests_file(build_config(config, [*set_, *extra], where="--grid/--set"), requests, lib)
        check_trace_length(cfg, slots, lib)
        return cfg

    sweep = build_sweep(
        cell_config,
        grid_values,
        names,
        list(range(first_seed, first_seed + seeds)),
        slots,
    )
    meta = {"command": {"library": library, "config": config, "set": list(set_), "grid": list(grid)}}
    report, summary = run_sweep(sweep, lib, out, workers=workers, address=address, meta=meta)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    typer.echo(
        f"{out}: {report.total} cells, {report.computed} computed, {report.skipped} already done "
        f"({report.wall_s:.1f} s); results.csv, summary.json"
    )
    for row in summary["rows"]:
        point = " ".join(f"{k}={row[k]}" for k in summary["grid_keys"])
        d = row["mean_delay_s"]
        typer.echo(f"  {point:40s} {row['policy']:10s} {d['mean']:.4g} ± {d['ci95']:.2g} s (n={row['n']})")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
