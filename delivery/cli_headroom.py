"""`pbkit sim headroom` and the `--requests FILE.csv` option of `sim run` and `sweep`.

Kept apart from delivery/cli.py so that the settings layer there can change without touching
these commands (they call `ScenarioConfig.build`, the one settings loader, and nothing else of it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from delivery.config import ScenarioConfig
    from pbkit.library import PBLibrary


def with_requests_file(cfg: ScenarioConfig, requests: Optional[Path], library: PBLibrary) -> ScenarioConfig:
    """The config replaying `requests` (demand "trace"), the file checked against the library
    and the scenario's users now: one TraceError line naming the row, before any work."""
    if requests is None:
        return cfg
    from delivery.demand import read_trace

    path = requests.resolve()
    read_trace(path, [m.name for m in library.models], cfg.n_users)
    return cfg.replace(demand="trace", requests_file=str(path))


def check_trace_length(cfg: ScenarioConfig, slots: int, library: PBLibrary) -> None:
    """A replay cannot run more slots than its trace has (ConfigError naming the file)."""
    if cfg.demand != "trace":
        return
    from delivery.demand import read_trace
    from delivery.errors import ConfigError

    n = len(read_trace(cfg.requests_file, [m.name for m in library.models], cfg.n_users))
    if slots > n:
        raise ConfigError(f"{cfg.requests_file}: the trace has {n} slots, --slots asks for {slots}")


def headroom_command(
    library: str = typer.Option(..., "--library", help="PB library JSON or a shipped name (hub-catalogue, ...)."),
    scenario: Optional[str] = typer.Option(
        None, "--scenario", "--config", help="Base scenario (file or bundled name); regimes override it."
    ),
    regimes: str = typer.Option(
        "default,stationary,everything-fits,diurnal,spreading,mobility",
        "--regimes",
        help="Bundled presets (delivery/scenarios/) applied over the base; 'default' is the base itself.",
    ),
    policies: str = typer.Option(
        "greedy,greedy-ema,greedy-forecast,lfu,lru,popular,oracle,search,fullcache",
        "--policies",
        help="Heuristics and references to run; add your own as module:Class.",
    ),
    policy: list[str] = typer.Option([], "--policy", help="An extra policy (name or module:Class), repeatable."),
    seeds: str = typer.Option(
        "10", "--seeds", help="Seeds (at least 2): N (N seeds from --first-seed), A-B (inclusive) or A,B,C."
    ),
    first_seed: int = typer.Option(0, "--first-seed", min=0, help="First seed of a count --seeds N."),
    slots: int = typer.Option(8, "--slots", min=1),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Leave the first slots out of each seed's mean."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting in every regime: key=value (repeatable)."),
    out: Path = typer.Option(Path("headroom"), "--out", help="Directory: results.csv, summary.json, headroom.json."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Parallel cells on Ray (default: 1, inline)."),
    as_json: bool = typer.Option(False, "--json", help="Print headroom.json."),
) -> None:
    """Per regime: greedy, the best heuristic, oracle, search and fullcache, paired 95 % intervals."""
    from delivery.cli import load_library_arg
    from delivery.config import ScenarioConfig
    from delivery.errors import ConfigError
    from delivery.headroom import format_table, run_headroom
    from pbkit.common.seeds import parse_seeds

    seed_list = parse_seeds(seeds, "--seeds", first_seed)
    if len(seed_list) < 2:
        raise ConfigError(f"--seeds {seeds}: an interval needs at least 2 seeds")
    base = ScenarioConfig.build(scenario, set_)
    lib = load_library_arg(library)
    names = [p.strip() for p in policies.split(",") if p.strip()] + list(policy)
    regime_list = [r.strip() for r in regimes.split(",") if r.strip()]
    meta = {"command": {"library": library, "scenario": scenario, "set": list(set_), "regimes": regime_list}}
    result = run_headroom(
        lib,
        base,
        regime_list,
        names,
        seed_list,
        slots,
        out,
        workers=workers,
        meta=meta,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(format_table(result))
    typer.echo(f"wrote {out}/headroom.json, results.csv, summary.json")
