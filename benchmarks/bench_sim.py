"""Simulator speed: slot time per beamformer, solver calls the per-slot cache saves, and how the
slot cost grows with K users, N ENs and J PBs. Prints a table and writes JSON.

    .venv/bin/python benchmarks/bench_sim.py [--library LIB] [--slots N] [--quick] [--with-sdr]
                                             [--out benchmarks/results/bench_sim.json]

Every case is the default scenario (robust beamformer, K = 20, N = 4, L = 4) with one setting
changed; the ratio column is the slot time over mrt's in the same run (the machine is shared).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from delivery.config import ScenarioConfig
from delivery.interval import Interval
from delivery.policies import make_policy
from delivery.simulator import Simulator
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import versioned
from pbkit.library import synthetic_library


def time_slots(cfg: ScenarioConfig, library, slots: int, seed: int = 0) -> dict:
    """Mean wall time of `step` (placement by LFU, computed outside the timer)."""
    sim = Simulator(cfg, library, np.random.default_rng(seed))
    policy = make_policy("lfu")
    rng = np.random.default_rng(seed + 1)
    wall, calls, hits, delay = [], 0, 0, []
    for _ in range(slots):
        x = policy.place(sim.policy_view(), rng)
        t = time.perf_counter()
        r = sim.step(x)
        wall.append(time.perf_counter() - t)
        calls += r.solver_calls
        hits += r.cache_hits
        delay.append(r.mean_delay_s)
    return {
        "slot_ms": 1e3 * float(np.mean(wall)),
        "slot_ms_min": 1e3 * float(np.min(wall)),
        "solver_calls_per_slot": calls / slots,
        "cache_hits_per_slot": hits / slots,
        "calls_saved_share": hits / max(calls + hits, 1),
        "mean_delay_s": float(np.mean(delay)),
        "slots": slots,
    }


def sweep_cache(lib, base: ScenarioConfig, out: Path) -> dict:
    """Mean delay (95 % t-interval over 5 seeds) per policy and cache fraction."""
    from delivery.experiment import compare

    policies = ["lfu", "greedy", "coarse", "noncoop"]
    result = {}
    print(f"{'fraction':>8}" + "".join(f"{p:>18}" for p in policies) + f"{'fine vs coarse':>16}")
    for fraction in (0.1, 0.2, 0.3, 0.5):
        res = compare(base.replace(cache_fraction=fraction), lib, policies, list(range(5)), 10)
        row = {p: res["policies"][p]["mean_delay_s"] for p in policies}
        best_fine = min(row["lfu"]["mean"], row["greedy"]["mean"])
        row["fine_vs_coarse_reduction"] = 1 - best_fine / row["coarse"]["mean"]
        result[str(fraction)] = row
        print(
            f"{fraction:>8}"
            + "".join(f"{row[p]['mean']:>11.2f} ± {Interval.from_json(row[p]).half_width:<4.2f}" for p in policies)
            + f"{row['fine_vs_coarse_reduction']:>15.0%}",
            flush=True,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    result = versioned("bench.sim-sweep-cache", {"policies": policies, "fractions": result})
    atomic_write_json(out, result, indent=1)
    print(f"wrote {out}")
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer slots, no growth sweeps")
    ap.add_argument(
        "--library",
        default="synthetic",
        help="PB library: 'synthetic', a shipped name or a library.json (default synthetic)",
    )
    ap.add_argument("--slots", type=int, default=6, help="slots per case (default 6)")
    ap.add_argument("--with-sdr", action="store_true", help="also time sdr (cvxpy; seconds per slot)")
    ap.add_argument(
        "--sweep-cache",
        action="store_true",
        help="instead: fine (lfu, greedy) vs coarse vs noncoop over cache_fraction, 5 seeds x 10 slots",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_sim.json"))
    args = ap.parse_args(argv)
    if args.library == "synthetic":
        lib = synthetic_library(np.random.default_rng(0))
    else:
        from pbkit.library import resolve_library

        lib = resolve_library(args.library)
    base = ScenarioConfig()
    if args.sweep_cache:
        return sweep_cache(lib, base, args.out.with_name("sweep_cache.json"))
    rows: dict[str, dict] = {}
    n = 2 if args.quick else args.slots
    # The reference in this run is mrt (closed form): the ratios say what each design costs on top.
    beamformers = ["mrt", "fast", "fast-backoff", "robust"] + (["sdr"] if args.with_sdr else [])
    for bf in beamformers:
        rows[f"beamformer={bf}"] = time_slots(base.replace(beamformer=bf), lib, 1 if bf == "sdr" else n)
        r = rows[f"beamformer={bf}"]
        print(f"beamformer {bf}: {r['slot_ms']:.0f} ms/slot, {r['solver_calls_per_slot']:.1f} designs/slot", flush=True)
    ref = rows["beamformer=mrt"]["slot_ms"]
    for r in rows.values():
        r["ratio_to_mrt"] = r["slot_ms"] / ref
    if not args.quick:  # growth of the default (robust) slot
        for k in (5, 10, 20, 40):
            rows[f"robust K={k}"] = time_slots(base.replace(n_users=k), lib, n)
        for nodes in (2, 4, 7):
            rows[f"robust N={nodes}"] = time_slots(base.replace(n_nodes=nodes), lib, n)
    result = {
        "command": "benchmarks/bench_sim.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "load_average_at_end": list(__import__("os").getloadavg()),
        },
        "library": lib.sharing(),
        "rows": rows,
    }
    print(
        f"{'case':<24}{'ms/slot':>10}{'min ms':>9}{'x mrt':>7}{'designs':>9}{'reused':>8}{'ms/design':>11}{'delay s':>9}"
    )
    for name, r in rows.items():
        per_design = r["slot_ms"] / max(r["solver_calls_per_slot"], 1e-9)  # upper bound: the slot's other work included
        ratio = f"{r['ratio_to_mrt']:>7.1f}" if "ratio_to_mrt" in r else f"{'':>7}"
        print(
            f"{name:<24}{r['slot_ms']:>10.0f}{r['slot_ms_min']:>9.0f}{ratio}{r['solver_calls_per_slot']:>9.1f}"
            f"{r['calls_saved_share']:>8.0%}{per_design:>11.1f}{r['mean_delay_s']:>9.2f}"
        )
    atomic_write_json(args.out, versioned("bench.sim", result), indent=1)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
