"""Where a default-scenario slot's beamforming time goes, by group size (docs/results.md §1.4).

    .venv/bin/python benchmarks/slot_design_breakdown.py [--library .pbkit-demo/library.json] [--beamformer robust]

Runs greedy on seeds 1-3 x 3 slots (after one warm-up run) with the robust design's parts timed:
per group size K, the designs per slot, their mean time, and how much of it is the full-power
robust-fast start (`design_fast`) and the SCA itself (`design_robust_sca`). Timing wrappers add a
little overhead, so the slot time printed is above bench_sim.py's. Designs the scheduler makes
in batches (`design_batch`, issue 15: a serving set's fading states together) do not go through
these wrappers, so they are missing from the per-K table; the slot time includes them.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import delivery.beamforming.api as api
from delivery.config import ScenarioConfig
from delivery.experiment import run_policy
from pbkit.library import resolve_library


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", default=".pbkit-demo/library.json")
    ap.add_argument("--beamformer", default="robust")
    args = ap.parse_args(argv)
    lib = resolve_library(args.library)
    cfg = ScenarioConfig().replace(beamformer=args.beamformer)

    per_k: dict[int, list[float]] = collections.defaultdict(list)
    parts: dict[int, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    current = {"k": 0}

    def timed(fn, part=None):
        def wrapper(*a, **kw):
            if part is None:
                current["k"] = a[0].g.shape[0]
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                dt = time.perf_counter() - t
                if part is None:
                    per_k[current["k"]].append(dt)
                else:
                    parts[current["k"]][part] += dt

        return wrapper

    # the api module's own names are what robust_sca() calls
    api.robust_sca = timed(api.robust_sca)
    api.design_fast = timed(api.design_fast, "fast start")
    api.design_robust_sca = timed(api.design_robust_sca, "sca")

    run_policy(cfg, lib, "greedy", 1, 0)
    per_k.clear()
    parts.clear()
    slots = 0
    start = time.perf_counter()
    for seed in (1, 2, 3):
        slots += len(run_policy(cfg, lib, "greedy", 3, seed).slots)
    total = time.perf_counter() - start
    print(f"{total / slots * 1e3:.0f} ms per slot (instrumented), {args.beamformer}, greedy, seeds 1-3 x 3 slots")
    print(" K  designs/slot  mean ms  ms/slot  fast-start ms/slot  sca ms/slot")
    for k in sorted(per_k):
        v = per_k[k]
        print(
            f"{k:2d}  {len(v) / slots:12.1f}  {np.mean(v) * 1e3:7.1f}  {sum(v) / slots * 1e3:7.0f}  "
            f"{parts[k]['fast start'] / slots * 1e3:18.0f}  {parts[k]['sca'] / slots * 1e3:11.0f}"
        )
    print(f"designs: {sum(sum(v) for v in per_k.values()) / slots * 1e3:.0f} ms per slot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
