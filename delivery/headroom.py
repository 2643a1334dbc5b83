"""Headroom: how much better than the best heuristic can a placement be, per regime?

For each regime (a bundled scenario preset applied over the base scenario), every heuristic and
every reference runs on the same seeds (same users, requests, channels). The table gives, per
regime: greedy, the best heuristic (lowest mean delay among the heuristics run), oracle, search
and fullcache, each with its mean delay and its paired per-seed difference to the best heuristic
with a 95 % t-interval. Headroom is there when oracle (or search) beats the best heuristic with
an interval excluding zero; fullcache bounds what any placement can gain.

Cells run through the sweep engine (delivery/sweep.py): resumable, results.csv and summary.json
in the output directory, headroom.json beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import paired_difference
from delivery.interval import Interval
from delivery.sweep import Sweep, run_sweep
from pbkit.common.fs import atomic_write_text
from pbkit.common.schema import SCHEMA_KEY, check_schema, schema_id
from pbkit.library import PBLibrary

REGIMES = ("default", "stationary", "everything-fits", "legacy", "diurnal", "spreading", "mobility")
HEURISTICS = ("greedy", "greedy-ema", "greedy-forecast", "lfu", "lru", "popular")
REFERENCES = ("oracle", "search", "fullcache")


def headroom_task(params: dict[str, Any], library: PBLibrary) -> dict[str, Any]:
    """One cell: `run_policy`'s summary plus every slot's mean delay (for the warm-up cut)."""
    from delivery.experiment import run_policy

    config = ScenarioConfig.from_dict(params["config"], where="cell config")
    run = run_policy(config, library, params["policy"], params["slots"], params["seed"])
    return {**run.summary(), "slot_delays_s": [s["mean_delay_s"] for s in run.slots]}


def regime_configs(base: ScenarioConfig, regimes: list[str]) -> list[ScenarioConfig]:
    """Each regime's config: `default` is the base itself; any other name is the bundled preset
    delivery/scenarios/NAME.yaml whose keys override the base. Raises ConfigError on an unknown
    name or a bad preset."""
    from delivery.config import scenario_path
    from delivery.errors import ConfigError
    from pbkit.common.settings import read_settings

    out = []
    for name in regimes:
        if name == "default":
            out.append(base)
            continue
        data = read_settings(scenario_path(name), ConfigError) or {}
        out.append(ScenarioConfig.from_dict(base.to_dict() | data, where=f"regime {name}"))
    return out


def headroom_table(
    per_seed: dict[str, dict[str, list[float]]], heuristics: list[str], references: list[str]
) -> dict[str, Any]:
    """From {regime: {policy: per-seed mean delays}} (same seeds, same order) the table rows.

    Each regime row: best heuristic (lowest mean), and for greedy, the best heuristic, each
    reference and any other policy run: mean with 95 % interval, paired difference to the best
    heuristic with its interval, ratio of means."""
    table: dict[str, Any] = {}
    for regime, runs in per_seed.items():
        heur = [h for h in heuristics if h in runs]
        if not heur:  # nothing to compare with (e.g. a run of references only): means alone
            table[regime] = {
                "best_heuristic": None,
                "policies": {n: {"mean_delay_s": Interval.from_samples(v).to_json()} for n, v in runs.items()},
            }
            continue
        best = min(heur, key=lambda h: float(np.mean(runs[h])))
        rows: dict[str, Any] = {}
        for name in [*dict.fromkeys(["greedy", best, *heur, *references, *runs])]:
            if name not in runs:
                continue
            pair = paired_difference(runs[name], runs[best])
            rows[name] = {
                "mean_delay_s": Interval.from_samples(runs[name]).to_json(),
                "diff_vs_best_s": Interval.from_json(pair).to_json(),
                "ratio_vs_best": pair["ratio"],
            }
        table[regime] = {"best_heuristic": best, "policies": rows}
    return table


def run_headroom(
    library: PBLibrary,
    base: ScenarioConfig,
    regimes: list[str],
    policies: list[str],
    seeds: list[int],
    slots: int,
    out_dir: str | Path,
    *,
    heuristics: list[str] | None = None,
    workers: int | None = None,
    meta: dict[str, Any] | None = None,
    warmup: int = 0,
) -> dict[str, Any]:
    """Run every (regime, policy, seed) cell (resumable in out_dir) and return the headroom table
    (also written to out_dir/headroom.json). A seed's figure is its mean delay over slots
    `warmup`.. (the first slots, where counting heuristics have seen nothing yet, left out).
    Raises ConfigError on a bad regime or policy name or a warm-up as long as the run,
    EngineError if a cell fails."""
    from delivery.errors import ConfigError

    if not 0 <= warmup < slots:
        raise ConfigError(f"--warmup {warmup} leaves no slot of {slots} to measure")
    from delivery.registry import make_policy

    for name in policies:
        make_policy(name)  # fail on a bad name before any work
    configs = regime_configs(base, regimes)
    sweep = Sweep(points=[{"regime": r} for r in regimes], configs=configs, policies=policies, seeds=seeds, slots=slots)
    executor = "inline" if (workers or 1) <= 1 else "ray"
    report, _ = run_sweep(
        sweep, library, out_dir, workers=workers, executor=executor, meta=meta, label="headroom", task=headroom_task
    )
    per_seed: dict[str, dict[str, list[float]]] = {r: {} for r in regimes}
    for res in report.results:
        p = res.cell.params
        measured = float(np.mean(res.result["slot_delays_s"][warmup:]))
        per_seed[p["point"]["regime"]].setdefault(p["policy"], []).append(measured)
    heur = [h for h in (heuristics or HEURISTICS) if h in policies]
    table = headroom_table(per_seed, heur, [r for r in REFERENCES if r in policies])
    result = {
        SCHEMA_KEY: schema_id("headroom"),
        "library": library.source.get("shipped_name") or library.source.get("path", ""),
        "seeds": seeds,
        "slots": slots,
        "warmup": warmup,
        "regimes": {r: cfg.to_dict() for r, cfg in zip(regimes, configs)},
        **(meta or {}),
        "table": table,
    }
    atomic_write_text(Path(out_dir) / "headroom.json", json.dumps(result, indent=1) + "\n")
    return result


def format_table(result: dict[str, Any], where: str = "headroom.json") -> str:
    """The headroom table as Markdown: one block of rows per regime. Raises SchemaError (a
    ValueError) naming `where` for a document that is not a current headroom.json."""
    check_schema(result, "headroom", where)
    lines = [
        f"{len(result['seeds'])} seeds x {result['slots']} slots (mean over slots {result['warmup']}.."
        f"{result['slots'] - 1}); paired differences to the regime's best heuristic, 95 % t-intervals over seeds",
        "",
        "| regime | policy | mean delay (s) | vs best heuristic (s, paired) | ratio |",
        "|---|---|---|---|---|",
    ]
    for regime, block in result["table"].items():
        best = block["best_heuristic"]
        for name, row in block["policies"].items():
            delay = Interval.from_json(row["mean_delay_s"], f"{where}: {regime} {name} mean_delay_s")
            if best is None:
                lines.append(f"| {regime} | {name} | {delay.format('.3f')} | - | - |")
                continue
            label = f"{name} (best heuristic)" if name == best else name
            diff = Interval.from_json(row["diff_vs_best_s"], f"{where}: {regime} {name} diff_vs_best_s")
            shown = "-" if name == best else f"{diff.mean:+.3f} {diff.format_range('+.3f')}"
            lines.append(f"| {regime} | {label} | {delay.format('.3f')} | {shown} | {row['ratio_vs_best']:.3f} |")
    return "\n".join(lines)
