"""Slot-level check of a speed change: every user's delay over seeds x slots, before and after.

    .venv/bin/python benchmarks/slot_golden.py save /tmp/slots.npz     # before the change
    .venv/bin/python benchmarks/slot_golden.py check /tmp/slots.npz    # after it

The default scenario on `--library` (default hub-catalogue), greedy placement, `--seeds` seeds x
`--slots` slots, for each beamformer of `--beamformers` (default robust and mrt) and each mode of
`--modes` (default fine). `check` prints, per beamformer and mode, how many slots are bit-identical
and the largest relative difference of a user's delay, and exits 1 when any differs by more than
`--rtol` (default 0: bit for bit); where slots differ it also prints the paired change of the
mean delay over seeds. `--start-steps S` runs the robust design with its fast starts capped at S
SCA steps (an approximation, to measure against a save of the default). design_golden.py checks
the beamformers alone; this checks what the scheduler makes of them (serving sets, orders, fading
states, link queues).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import stats

from delivery.beamforming import CachedDesigner, RobustScaSettings
from delivery.config import ScenarioConfig
from delivery.policies import make_policy
from delivery.simulator import Simulator
from pbkit.library import resolve_library


def run(
    library: str, beamformer: str, mode: str, seeds: int, slots: int, robust: RobustScaSettings = RobustScaSettings()
) -> tuple[np.ndarray, float]:
    """(seeds, slots, K) user delays and the mean wall seconds of `step`."""
    lib = resolve_library(library)
    cfg = ScenarioConfig().replace(beamformer=beamformer, mode=mode)
    out = np.zeros((seeds, slots, cfg.n_users))
    wall = 0.0
    for seed in range(seeds):
        sim = Simulator(cfg, lib, np.random.default_rng(seed), designer=CachedDesigner(robust=robust))
        policy = make_policy("greedy")
        rng = np.random.default_rng(seed + 1000)
        for t in range(slots):
            x = policy.place(sim.policy_view(), rng)
            start = time.perf_counter()
            out[seed, t] = sim.step(x).user_delay_s
            wall += time.perf_counter() - start
    return out, wall / (seeds * slots)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["save", "check"])
    ap.add_argument("path")
    ap.add_argument("--library", default="hub-catalogue")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--slots", type=int, default=6)
    ap.add_argument("--beamformers", default="robust,mrt")
    ap.add_argument("--modes", default="fine")
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument(
        "--start-steps",
        type=int,
        default=None,
        help="an approximation to measure: cap the robust design's fast starts at this many SCA steps",
    )
    args = ap.parse_args(argv)
    robust = RobustScaSettings(start_steps=args.start_steps)
    now: dict[str, np.ndarray] = {}
    for bf in args.beamformers.split(","):
        for mode in args.modes.split(","):
            delays, slot_s = run(args.library, bf, mode, args.seeds, args.slots, robust)
            now[f"{bf}-{mode}"] = delays
            print(f"{bf} {mode}: {slot_s:.3f} s per slot", flush=True)
    if args.action == "save":
        np.savez(args.path, **now)
        print(f"saved {len(now)} runs ({args.seeds} seeds x {args.slots} slots) to {args.path}")
        return 0
    ref = np.load(args.path)
    worst = 0.0
    for key, delays in now.items():
        old = ref[key]
        same = int(np.all(delays == old, axis=2).sum())
        rel = float(np.max(np.abs(delays - old) / np.maximum(np.abs(old), 1e-300)))
        worst = max(worst, rel)
        print(f"{key}: {same}/{old.shape[0] * old.shape[1]} slots bit-identical, max relative difference {rel:.3g}")
        if same < old.shape[0] * old.shape[1]:  # paired over seeds: each seed's mean delay, new - old
            diff = delays.mean(axis=(1, 2)) - old.mean(axis=(1, 2))
            half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
            print(
                f"  mean delay {old.mean():.4f} -> {delays.mean():.4f} s, change {diff.mean():+.4g} s "
                f"[{diff.mean() - half:+.4g}, {diff.mean() + half:+.4g}] (95 % paired t over {len(diff)} seeds), "
                f"relative {diff.mean() / old.mean():+.3%}"
            )
    return 1 if worst > args.rtol else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
