"""`pbkit sim run` and `pbkit sim compare` (mounted by pbkit/cli/app.py through `register`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from delivery.errors import ConfigError
from pbkit.common.settings import parse_set_overrides

if TYPE_CHECKING:  # the simulator (numpy, scipy, cvxpy) is imported when a command runs, not at start-up
    from delivery.config import ScenarioConfig
    from pbkit.library import PBLibrary


def load_library_arg(spec: str) -> PBLibrary:
    """A library file, `synthetic`, or a shipped library name (pbkit.library.resolve_library)."""
    from pbkit.library import resolve_library

    return resolve_library(spec)


def build_config(config: Optional[str], overrides: list[str], where: str = "--set") -> ScenarioConfig:
    """A config file (or a bundled scenario name: default, small) plus `key=value` overrides;
    `where` names the options the overrides came from in error messages."""
    from delivery.config import ScenarioConfig, scenario_path

    if config is None:
        cfg = ScenarioConfig()
    elif Path(config).exists():
        cfg = ScenarioConfig.load(config)
    else:
        cfg = ScenarioConfig.load(scenario_path(config))
    values = parse_set_overrides(overrides, ConfigError)
    return ScenarioConfig.from_dict(cfg.to_dict() | values, where=where) if values else cfg


def register(app: typer.Typer) -> None:
    sim = typer.Typer(help="CoMP broadcast caching simulator.", no_args_is_help=True)
    app.add_typer(sim, name="sim")

    @sim.command("run")
    def run_cmd(
        library: str = typer.Option(..., "--library", help="PB library JSON, or 'synthetic'."),
        policy: str = typer.Option(
            "greedy", "--policy", help="A policy name (pbkit sim policies), or your own as module:Class."
        ),
        slots: int = typer.Option(20, "--slots", min=1),
        seed: int = typer.Option(0, "--seed"),
        config: Optional[str] = typer.Option(None, "--config", help="YAML/TOML scenario, or 'default'/'small'."),
        set_: list[str] = typer.Option([], "--set", help="Override a setting: key=value (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
        deliver_to: Optional[Path] = typer.Option(
            None,
            "--deliver-to",
            help="Write each user's received blocks per slot here (library exported from --store; delivery/device.py).",
        ),
        requests: Optional[Path] = typer.Option(
            None, "--requests", help="Replay a request trace: CSV slot,user,model (model by name)."
        ),
        ctx: typer.Context = typer.Option(None, hidden=True),
    ) -> None:
        """Run one policy on one scenario and report the mean download delay."""
        from delivery.cli_headroom import check_trace_length, with_requests_file
        from delivery.experiment import BREAKDOWN_KEYS, run_policy
        from pbkit.common.progress import Progress

        lib = load_library_arg(library)
        cfg = with_requests_file(build_config(config, set_), requests, lib)
        check_trace_length(cfg, slots, lib)
        with Progress(transient=True, disable=as_json or slots < 5) as progress:
            task = progress.add_task(f"{policy}", total=slots)
            writer = None
            if deliver_to is not None:
                from delivery.device import DeviceWriter
                from pbkit.store import Store

                writer = DeviceWriter(Store.open(ctx.obj.store_dir, create=False), lib, deliver_to)
            result = run_policy(
                cfg,
                lib,
                policy,
                slots,
                seed,
                on_slot=lambda r: (writer is not None and writer.write_slot(r), progress.advance(task)),
            )
        summary = result.summary()
        if as_json:
            typer.echo(
                json.dumps(
                    {**summary, "config": cfg.replace(mode=result.mode).to_dict(), "per_slot": result.slots}, indent=1
                )
            )
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{policy} ({result.mode}), seed {seed}, {slots} slots")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("mean_delay_s", f"{summary['mean_delay_s']:.4g}")
        for key in BREAKDOWN_KEYS:
            table.add_row(f"  {key}", f"{summary['breakdown_s'][key]:.4g}")
        table.add_row("delay_lower_bound_s", f"{summary['delay_lower_bound_s']:.4g}")
        table.add_row("hit_ratio_local", f"{summary['hit_ratio_local']:.3f}")
        table.add_row("hit_ratio_edge", f"{summary['hit_ratio_edge']:.3f}")
        table.add_row("backhaul / cloud bytes", f"{summary['backhaul_bytes']:.3e} / {summary['cloud_bytes']:.3e}")
        table.add_row("solver calls / cache hits", f"{summary['solver_calls']} / {summary['cache_hits']}")
        Console().print(table)

    @sim.command("compare")
    def compare_cmd(
        library: str = typer.Option(..., "--library", help="PB library JSON, or 'synthetic'."),
        policies: Optional[str] = typer.Option(
            None, "--policies", help="Comma-separated names (default: the registry's comparison set)."
        ),
        seeds: int = typer.Option(5, "--seeds", min=1, help="Seeds 0..n-1 (or from --first-seed)."),
        first_seed: int = typer.Option(0, "--first-seed"),
        slots: int = typer.Option(20, "--slots", min=1),
        config: Optional[str] = typer.Option(None, "--config", help="YAML/TOML scenario, or 'default'/'small'."),
        set_: list[str] = typer.Option([], "--set", help="Override a setting: key=value (repeatable)."),
        out: Path = typer.Option(Path("sim-compare"), "--out", help="Directory for compare.json and compare.png."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Run several policies on the same scenarios; table with 95 % t-intervals over seeds."""
        from delivery.experiment import BREAKDOWN_KEYS, compare, plot_compare
        from delivery.registry import compare_defaults, make_policy
        from pbkit.common.progress import Progress

        cfg = build_config(config, set_)
        lib = load_library_arg(library)
        names = [p.strip() for p in policies.split(",") if p.strip()] if policies else compare_defaults()

        for name in names:
            make_policy(name)  # fail on a bad name before any work
        seed_list = list(range(first_seed, first_seed + seeds))
        with Progress(transient=True, disable=as_json) as progress:
            task = progress.add_task("compare", total=len(names) * len(seed_list))
            result = compare(cfg, lib, names, seed_list, slots, on_run=lambda r: progress.advance(task, 1))
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(result, indent=1))
        plot_compare(result, out / "compare.png")
        if as_json:
            typer.echo(json.dumps(result, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(seed_list)} seeds x {slots} slots (95 % t-interval over seeds)")
        paired = result.get("paired_vs_best_heuristic", {})
        best = next(iter(paired.values()))["vs"] if paired else None
        for col in (
            "policy",
            "mode",
            "mean delay (s)",
            f"vs {best} (s, paired)",
            "waiting",
            "prep",
            "air",
            "retx",
            "local hit",
            "edge hit",
        ):
            table.add_column(col, justify="right" if col not in ("policy", "mode") else "left")
        for name, row in result["policies"].items():
            d = row["mean_delay_s"]
            b = row["breakdown_s"]
            p = paired.get(name)
            diff = f"{p['mean_diff_s']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]" if p and name != best else "-"
            table.add_row(
                name,
                row["mode"],
                f"{d['mean']:.3f} ± {d['ci95']:.3f}",
                diff,
                *(f"{b[k]:.3f}" for k in BREAKDOWN_KEYS),
                f"{row['hit_ratio_local']['mean']:.2f}",
                f"{row['hit_ratio_edge']['mean']:.2f}",
            )
        console = Console()
        if console.width < 160:  # keep the table on one line per policy in pipes and logs
            console = Console(width=160)
        console.print(table)
        lb = next(iter(result["policies"].values()))["delay_lower_bound_s"]["mean"]
        console.print(f"placement-free lower bound on mean delay: {lb:.3f} s; wrote {out}/compare.json, compare.png")

    from delivery.cli_headroom import headroom_command

    sim.command("headroom")(headroom_command)

    @sim.command("policies")
    def policies_cmd() -> None:
        """List the caching policies: name, role (heuristic, baseline, reference, bound), what it does."""
        from delivery.registry import describe

        typer.echo(describe())
