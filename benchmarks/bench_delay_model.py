"""Checks the delay model against what must be true, and prints the tables docs/system-model.md quotes.

1. Scheduler vs the best order, by enumerating every order of small slots (<= 7 units), with the
   previous rule (units by ready time, larger group first) for reference.
2. More cache never slows delivery: mean delay of greedy, lfu and popular at cache_fraction
   0.15 / 0.3 / 0.6 / 1.0 (--fractions; 1.0 = everything cached everywhere), same seeds for every
   cell, 95 % t-intervals; the placement-free lower bound checked on every slot; how often a single
   slot violates monotonicity. The scenario is the default one with --set overrides (change cost
   "separate" unless --change-cost says otherwise: with loads charged as delay, more cache can
   mean more loads in the way, so monotonicity is not a theorem there).

    .venv/bin/python benchmarks/bench_delay_model.py [--library LIB] [--seeds 5] [--slots 10]
        [--beamformer mrt] [--instances 40] [--fractions 0.15,0.3,0.6,1.0] [--set KEY=VALUE ...]
        [--out benchmarks/results/delay_model.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from delivery.channels import draw_states
from delivery.config import ScenarioConfig
from delivery.errors import ConfigError
from delivery.experiment import run_policy
from delivery.interval import Interval
from delivery.order_check import mean_delay_with_order, order_gap, slot_units
from delivery.scheduler import Timeline, fixed_order
from delivery.simulator import Simulator
from pbkit.common.schema import versioned
from pbkit.errors import PbkitError
from pbkit.library import resolve_library, synthetic_library

FRACTIONS = (0.15, 0.3, 0.6, 1.0)
DEMO_LIBRARY = ".pbkit-demo/library.json"
POLICIES = ("greedy", "lfu", "popular")


def previous_rule(ids: list[int], timeline: Timeline):
    """The rule this round replaced: units by estimated ready time, then larger group first."""

    def ready(i: int) -> float:
        u = timeline.units[i]
        held = u.holder_ready[u.candidates]
        if np.isfinite(held).any():
            return float(held.min())
        return min(timeline._fetch_options(u, int(n))[0] for n in u.candidates)

    key = sorted(ids, key=lambda i: (ready(i), -len(timeline.units[i].users), i))
    return fixed_order(key)(ids, timeline)


def order_gaps(instances: int, beamformer: str, seed: int, csi_error: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    for _i in range(instances):
        lib = synthetic_library(rng, families=1, models_per_family=3, base_pbs=3, own_pbs=1, mean_pb_bytes=4e6)
        cfg = ScenarioConfig(
            n_nodes=2,
            antennas=2,
            n_users=int(rng.integers(3, 7)),
            beamformer=beamformer,
            cache_fraction=float(rng.choice([0.3, 0.6, 1.0])),
            csi_error=csi_error,
        )
        try:
            sim = Simulator(cfg, lib, np.random.default_rng(rng.integers(1 << 32)))
        except ConfigError:  # capacity below the largest PB: draw another instance
            continue
        placement = sim.project(rng.uniform(size=(sim.n_nodes, sim.n_pbs)))
        requests = rng.integers(0, sim.n_models, cfg.n_users)
        channels = draw_states(rng, sim.topology.gain_lin, cfg.antennas, cfg.csi_error, cfg.fading_states)
        try:
            gap = order_gap(sim, placement, requests, channels)
        except ValueError:
            continue

        old_s = _mean_with(sim, placement, requests, channels, previous_rule)
        rows.append(
            {
                "units": gap.units,
                "scheduler": gap.scheduler_s,
                "best": gap.best_s,
                "worst": gap.worst_s,
                "previous_rule": old_s,
            }
        )
    gaps = np.array([r["scheduler"] / r["best"] - 1 for r in rows])
    old = np.array([r["previous_rule"] / r["best"] - 1 for r in rows])
    return {
        "instances": len(rows),
        "scheduler_gap_mean": float(gaps.mean()),
        "scheduler_gap_max": float(gaps.max()),
        "scheduler_optimal_share": float((gaps <= 1e-9).mean()),
        "previous_rule_gap_mean": float(old.mean()),
        "previous_rule_gap_max": float(old.max()),
        "rows": rows,
    }


def _mean_with(sim, placement, requests, channels, order) -> float:
    from delivery.scheduler import DesignMemo

    units = slot_units(sim, placement, requests)
    return mean_delay_with_order(sim, units, channels, order, DesignMemo(sim.designer))


def monotonicity(
    library,
    seeds: int,
    slots: int,
    beamformer: str,
    change_cost: str,
    fractions: tuple[float, ...] = FRACTIONS,
    base: ScenarioConfig | None = None,
) -> dict:
    base = base or ScenarioConfig()
    per_slot: dict[tuple[str, float], np.ndarray] = {}
    bound_ok = True
    table = {}
    for policy in POLICIES:
        for frac in fractions:
            cfg = base.replace(beamformer=beamformer, cache_fraction=frac, change_cost=change_cost)
            runs = [run_policy(cfg, library, policy, slots, s) for s in range(seeds)]
            delays = np.array([[sl["mean_delay_s"] for sl in r.slots] for r in runs])
            bounds = np.array([[sl["delay_lower_bound_s"] for sl in r.slots] for r in runs])
            bound_ok &= bool((bounds <= delays + 1e-12).all())
            per_slot[(policy, frac)] = delays
            delay = Interval.from_samples(delays.mean(axis=1))
            table[f"{policy}@{frac}"] = {"mean_delay_s": delay.to_json()}
            print(f"  {policy:8s} cache_fraction {frac:4.2f}: {delay.format('.3f')} s", flush=True)
    full = {p: per_slot[(p, 1.0)] for p in POLICIES}
    viol_step = viol_full = total = 0
    mean_violations = []
    for p in POLICIES:
        for a, b in zip(fractions, fractions[1:]):
            viol_step += int((per_slot[(p, b)] > per_slot[(p, a)] + 1e-12).sum())
            total += per_slot[(p, a)].size
            if per_slot[(p, b)].mean() > per_slot[(p, a)].mean() + 1e-12:
                mean_violations.append(f"{p}: {a} -> {b}")
        for frac in fractions[:-1]:
            viol_full += int((full[p] > per_slot[(p, frac)] + 1e-12).sum())
    everything = float(full[POLICIES[0]].mean())
    worst_other = min(float(v.mean()) for v in per_slot.values())
    return {
        "table": table,
        "everything_cached_mean_s": everything,
        "everything_cached_is_best": everything <= worst_other + 1e-12,
        "mean_monotone_violations": mean_violations,
        "slot_violations_step": viol_step,
        "slot_pairs_step": total,
        "slot_violations_vs_everything": viol_full,
        "slot_pairs_vs_everything": len(POLICIES) * (len(fractions) - 1) * seeds * slots,
        "lower_bound_holds_every_slot": bound_ok,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--library", default=DEMO_LIBRARY, help="a library path or shipped name (synthetic if the demo is missing)"
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--slots", type=int, default=10)
    ap.add_argument("--beamformer", default="mrt")
    ap.add_argument("--change-cost", default="separate")
    ap.add_argument("--instances", type=int, default=40)
    ap.add_argument(
        "--fractions",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=FRACTIONS,
        help="increasing cache fractions ending in 1.0 (everything cached everywhere)",
    )
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE scenario override (repeatable)")
    ap.add_argument("--out", default="benchmarks/results/delay_model.json")
    args = ap.parse_args(argv)
    fr = args.fractions
    if list(fr) != sorted(set(fr)) or fr[-1] != 1.0:
        print(f"pbkit: error: --fractions {fr}: need increasing fractions ending in 1.0", file=sys.stderr)
        return 2
    try:
        base = ScenarioConfig.build(None, args.set)
        path = Path(args.library)
        default_missing = args.library == DEMO_LIBRARY and not path.is_file()
        library = synthetic_library(np.random.default_rng(0)) if default_missing else resolve_library(args.library)
    except PbkitError as exc:
        print(f"pbkit: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"1. scheduler vs every order, {args.instances} small slots ({args.beamformer})", flush=True)
    gaps = order_gaps(args.instances, args.beamformer, seed=0)
    print(
        f"  scheduler: mean gap {100 * gaps['scheduler_gap_mean']:.2f} %, max {100 * gaps['scheduler_gap_max']:.2f} %,"
        f" optimal in {100 * gaps['scheduler_optimal_share']:.0f} % of {gaps['instances']} slots"
    )
    print(
        f"  previous rule: mean gap {100 * gaps['previous_rule_gap_mean']:.2f} %, max {100 * gaps['previous_rule_gap_max']:.2f} %"
    )
    print(
        f"2. more cache never slows delivery: {'synthetic' if default_missing else args.library}, "
        f"{args.seeds} seeds x {args.slots} slots, {args.beamformer}, change cost {args.change_cost}"
        f"{', ' + ' '.join(args.set) if args.set else ''}",
        flush=True,
    )
    mono = monotonicity(library, args.seeds, args.slots, args.beamformer, args.change_cost, fr, base)
    print(
        f"  everything cached everywhere: {mono['everything_cached_mean_s']:.3f} s; best of all cells: "
        f"{mono['everything_cached_is_best']}"
    )
    print(f"  mean delay rising with cache_fraction: {mono['mean_monotone_violations'] or 'never'}")
    print(
        f"  single slots slower with the next larger cache: {mono['slot_violations_step']} of {mono['slot_pairs_step']};"
        f" slower with everything cached: {mono['slot_violations_vs_everything']} of {mono['slot_pairs_vs_everything']}"
    )
    print(f"  placement-free lower bound below every slot's delay: {mono['lower_bound_holds_every_slot']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            versioned(
                "bench.delay-model",
                {"args": vars(args), "order_gaps": gaps, "monotonicity": mono, "wall_s": time.perf_counter() - started},
            ),
            indent=1,
        )
    )
    print(f"wrote {out} ({time.perf_counter() - started:.0f} s)")
    ok = (
        mono["everything_cached_is_best"]
        and not mono["mean_monotone_violations"]
        and mono["lower_bound_holds_every_slot"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
