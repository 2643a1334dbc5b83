"""`pbkit sim run` and `pbkit sim compare` (mounted by pbkit/cli/app.py through `register`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from delivery.errors import ConfigError
from pbkit.common.seeds import SEEDS_GRAMMAR, parse_seeds

if TYPE_CHECKING:  # the simulator (numpy, scipy, cvxpy) is imported when a command runs, not at start-up
    from pbkit.library import PBLibrary

SCENARIO_HELP = "Scenario: a YAML/TOML file, or a bundled name such as 'default' or 'small' (delivery/scenarios/)."


def load_library_arg(spec: str) -> PBLibrary:
    """A library file, `synthetic`, or a shipped library name (pbkit.library.resolve_library)."""
    from pbkit.library import resolve_library

    return resolve_library(spec)


def scenario_option() -> Any:
    """`--scenario`, the scenario of every command that runs one."""
    return typer.Option(None, "--scenario", help=SCENARIO_HELP)


def legacy_config_option() -> Any:
    """The old spelling of `--scenario` in sim, sweep, figures and learn eval (hidden, deprecated)."""
    return typer.Option(None, "--config", hidden=True, help="Deprecated: use --scenario.")


def scenario_source(scenario: Optional[str], legacy: Optional[str]) -> Optional[str]:
    """The `--scenario` value, or the deprecated `--config` one with a note on stderr."""
    if legacy is not None:
        if scenario is not None:
            raise ConfigError("--config is the old name of --scenario: give one of them")
        typer.echo("pbkit: note: --config here is deprecated; it is now --scenario", err=True)
        return legacy
    return scenario


def scenario_label(source: Optional[str], overrides: list[str]) -> str:
    """What a result says it ran on: `scenario small + beamformer=mrt`."""
    name = "default" if source is None else Path(source).stem if Path(source).suffix else str(source)
    return f"scenario {name}" + "".join(f" + {o}" for o in overrides)


def seeds_option(default: str, what: str = "Seeds") -> Any:
    return typer.Option(default, "--seeds", help=f"{what}: {SEEDS_GRAMMAR}.")


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
        seed: int = typer.Option(0, "--seed", min=0, help="Scenario seed (non-negative)."),
        scenario: Optional[str] = scenario_option(),
        config: Optional[str] = legacy_config_option(),
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
        from delivery.config import ScenarioConfig
        from delivery.experiment import BREAKDOWN_KEYS, run_policy
        from pbkit.common.progress import Progress
        from pbkit.common.sizes import format_size

        source = scenario_source(scenario, config)
        cfg = ScenarioConfig.build(source, set_)
        lib = load_library_arg(library)
        cfg = with_requests_file(cfg, requests, lib)
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
            from pbkit.common.schema import versioned

            doc = {**summary, "config": cfg.replace(mode=result.mode).to_dict(), "per_slot": result.slots}
            typer.echo(json.dumps(versioned("sim-run", doc), indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console(width=80)  # no line wider than 80 columns
        console.print(f"library {library}, {scenario_label(source, set_)}", soft_wrap=True)
        table = Table(title=f"{policy} ({result.mode}), seed {seed}, {slots} slots")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("mean delay", f"{summary['mean_delay_s']:.4g} s")
        for key in BREAKDOWN_KEYS:
            table.add_row(f"  {key}", f"{summary['breakdown_s'][key]:.4g} s")
        table.add_row("delay lower bound", f"{summary['delay_lower_bound_s']:.4g} s")
        table.add_row("hit ratio local / edge", f"{summary['hit_ratio_local']:.3f} / {summary['hit_ratio_edge']:.3f}")
        table.add_row(
            "backhaul / cloud", f"{format_size(summary['backhaul_bytes'])} / {format_size(summary['cloud_bytes'])}"
        )
        # the scheduler memoises beamforming designs per user group: solved vs reused ones
        table.add_row("beamformer designs solved / reused", f"{summary['solver_calls']} / {summary['cache_hits']}")
        console.print(table)

    @sim.command("compare")
    def compare_cmd(
        library: str = typer.Option(..., "--library", help="PB library JSON, or 'synthetic'."),
        policies: Optional[str] = typer.Option(
            None, "--policies", help="Comma-separated names (default: the registry's comparison set)."
        ),
        seeds: str = seeds_option("5"),
        first_seed: int = typer.Option(0, "--first-seed", min=0, help="First seed of a count --seeds N."),
        slots: int = typer.Option(20, "--slots", min=1),
        scenario: Optional[str] = scenario_option(),
        config: Optional[str] = legacy_config_option(),
        set_: list[str] = typer.Option([], "--set", help="Override a setting: key=value (repeatable)."),
        out: Path = typer.Option(Path("sim-compare"), "--out", help="Directory for compare.json and compare.png."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Run several policies on the same scenarios; table with 95 % t-intervals over seeds."""
        from delivery.config import ScenarioConfig
        from delivery.experiment import BREAKDOWN_KEYS, compare, plot_compare
        from delivery.interval import Interval
        from delivery.registry import compare_defaults, make_policy
        from pbkit.common.progress import Progress

        seed_list = parse_seeds(seeds, "--seeds", first_seed)
        source = scenario_source(scenario, config)
        cfg = ScenarioConfig.build(source, set_)
        lib = load_library_arg(library)
        names = [p.strip() for p in policies.split(",") if p.strip()] if policies else compare_defaults()

        for name in names:
            make_policy(name)  # fail on a bad name before any work
        with Progress(transient=True, disable=as_json) as progress:
            task = progress.add_task("compare", total=len(names) * len(seed_list))
            result = compare(cfg, lib, names, seed_list, slots, on_run=lambda r: progress.advance(task, 1))
        from pbkit.common.fs import atomic_write_json
        from pbkit.common.schema import versioned

        result = versioned("sim-compare", {"library": library, "scenario": scenario_label(source, set_), **result})
        atomic_write_json(out / "compare.json", result)
        plot_compare(result, out / "compare.png")
        if as_json:
            typer.echo(json.dumps(result, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        # Two tables of at most 80 columns (one line per policy in a terminal, a pipe or a log):
        # the delays with their intervals, then where the time goes and the hit ratios.
        console = Console(width=80)
        console.print(
            f"library {library}, {scenario_label(source, set_)}: {len(seed_list)} seeds x {slots} slots",
            soft_wrap=True,
        )
        paired = result.get("paired_vs_best_heuristic", {})
        best = next(iter(paired.values()))["vs"] if paired else None
        table = Table(title="mean delay (s), 95 % t-interval over seeds")
        for col in ("policy", "mode", "mean delay", f"paired vs {best}" if best else "paired"):
            table.add_column(col, justify="left" if col in ("policy", "mode") else "right")
        for name, row in result["policies"].items():
            d = Interval.from_json(row["mean_delay_s"], f"{name} mean_delay_s")
            p = paired.get(name)
            diff = "-"
            if p and name != best:
                pi = Interval.from_json(p, f"{name} paired")
                diff = f"{pi.mean:+.3f} {pi.format_range('+.3f')}"
            table.add_row(name, row["mode"], d.format(".3f"), diff)
        console.print(table)
        table = Table(title="mean delay by part (s) and hit ratios")
        short = {"waiting": "wait", "preparation": "prep", "airtime": "air", "retransmission": "retx"}
        for col in ("policy", *(short.get(k, k) for k in BREAKDOWN_KEYS), "local hit", "edge hit"):
            table.add_column(col, justify="left" if col == "policy" else "right")
        for name, row in result["policies"].items():
            b = row["breakdown_s"]
            table.add_row(
                name,
                *(f"{b[k]:.3f}" for k in BREAKDOWN_KEYS),
                f"{row['hit_ratio_local']['mean']:.2f}",
                f"{row['hit_ratio_edge']['mean']:.2f}",
            )
        console.print(table)
        lb = next(iter(result["policies"].values()))["delay_lower_bound_s"]["mean"]
        console.print(f"placement-free lower bound on mean delay: {lb:.3f} s", soft_wrap=True)
        console.print(f"wrote {out}/compare.json, compare.png", soft_wrap=True)

    from delivery.cli_headroom import headroom_command

    sim.command("headroom")(headroom_command)

    @sim.command("policies")
    def policies_cmd() -> None:
        """List the caching policies: name, role (heuristic, baseline, reference, bound), what it does."""
        from delivery.registry import describe

        typer.echo(describe())
