"""Simulator speed: slot time per beamformer, solver calls the per-slot cache saves, and how the
slot cost grows with K users, N ENs and J PBs. Prints a table and writes JSON.

    .venv/bin/python benchmarks/bench_sim.py [--quick] [--out benchmarks/results/bench_sim.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from delivery.config import ScenarioConfig
from delivery.policies import make_policy
from delivery.simulator import Simulator
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
        print(f"{fraction:>8}" + "".join(f"{row[p]['mean']:>11.2f} ± {row[p]['ci95']:<4.2f}" for p in policies)
              + f"{row['fine_vs_coarse_reduction']:>15.0%}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer slots, skip robust")
    ap.add_argument("--sweep-cache", action="store_true",
                    help="instead: fine (lfu, greedy) vs coarse vs noncoop over cache_fraction, 5 seeds x 10 slots")
    ap.add_argument("--full-robust", action="store_true", help="robust on the default K = 20 (minutes)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_sim.json"))
    args = ap.parse_args(argv)
    lib = synthetic_library(np.random.default_rng(0))
    base = ScenarioConfig()
    if args.sweep_cache:
        return sweep_cache(lib, base, args.out.with_name("sweep_cache.json"))
    rows: dict[str, dict] = {}
    n = 3 if args.quick else 10
    for bf, slots in (("mrt", n), ("fast", n), ("sdr", 1)):
        rows[f"beamformer={bf}"] = time_slots(base.replace(beamformer=bf), lib, slots)
        print(f"beamformer {bf}: {rows[f'beamformer={bf}']['slot_ms']:.1f} ms/slot", flush=True)
    # robust takes minutes per slot with K = 20 (measured 462 s); K = 6 by default
    robust_cfg = base.replace(beamformer="robust") if args.full_robust else base.replace(beamformer="robust", n_users=6)
    if not args.quick:
        name = "beamformer=robust" + ("" if args.full_robust else " K=6")
        rows[name] = time_slots(robust_cfg, lib, 1)
        rows["beamformer=sdr K=6"] = time_slots(base.replace(beamformer="sdr", n_users=6), lib, 1)
        rows["beamformer=fast K=6"] = time_slots(base.replace(n_users=6), lib, 1)
        print(f"{name}: {rows[name]['slot_ms']:.1f} ms/slot", flush=True)
    for k in (5, 10, 20, 40):
        rows[f"fast K={k}"] = time_slots(base.replace(n_users=k), lib, n)
    for nodes in (2, 4, 7):
        rows[f"fast N={nodes}"] = time_slots(base.replace(n_nodes=nodes), lib, n)
    for families, per_family in ((1, 3), (2, 6), (4, 10)):
        big = synthetic_library(np.random.default_rng(0), families=families, models_per_family=per_family)
        rows[f"fast J={len(big.pbs)}"] = time_slots(base, big, n)
    result = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "library": lib.sharing(),
        "rows": rows,
    }
    print(f"{'case':<22}{'ms/slot':>10}{'min ms':>9}{'calls':>8}{'hits':>8}{'saved':>7}{'delay s':>9}")
    for name, r in rows.items():
        print(f"{name:<22}{r['slot_ms']:>10.1f}{r['slot_ms_min']:>9.1f}{r['solver_calls_per_slot']:>8.1f}"
              f"{r['cache_hits_per_slot']:>8.1f}{r['calls_saved_share']:>7.0%}{r['mean_delay_s']:>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
