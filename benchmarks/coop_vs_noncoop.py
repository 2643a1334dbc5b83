"""Cooperation (fine-grained CoMP, greedy placement) against non-cooperative cells, paired over seeds.

    .venv/bin/python benchmarks/coop_vs_noncoop.py --library bert --seeds 10 --slots 2 --beamformer mrt

Both run the same scenario per seed (users, requests and channels: seed s is the same draw for
both); noncoop serves each cell on its own 1/N of the band with the noise of that band
(docs/system-model.md, "Noise"). Reported: mean delay with 95 % t-intervals over seeds and the
paired per-seed reduction 100 (noncoop - fine) / noncoop with its 95 % t-interval.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import run_policy
from delivery.interval import Interval
from pbkit.common.schema import SCHEMA_KEY, schema_id
from pbkit.library import resolve_library


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default="bert")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--beamformer", default="robust")
    ap.add_argument("--policy", default="greedy", help="the cooperative (fine) policy")
    ap.add_argument(
        "--full-band-noise",
        action="store_true",
        help="charge noncoop the whole band's noise, as before issue 15 (its noise figure raised by 10 log10 N dB)",
    )
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE scenario override (repeatable)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    library = resolve_library(args.library)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    cfg = ScenarioConfig(beamformer=args.beamformer).replace(**{k: float(v) for k, v in overrides.items()})
    fine, non = [], []
    for seed in range(args.seeds):
        fine.append(run_policy(cfg, library, args.policy, args.slots, seed).summary()["mean_delay_s"])
        non_cfg = cfg
        if args.full_band_noise:  # noise over B/N with NF + 10 log10 N dB = noise over B with NF
            non_cfg = cfg.replace(noise_figure_db=cfg.noise_figure_db + 10 * np.log10(cfg.n_nodes))
        non.append(run_policy(non_cfg, library, "noncoop", args.slots, seed).summary()["mean_delay_s"])
        print(f"seed {seed}: {args.policy} {fine[-1]:.3f} s  noncoop {non[-1]:.3f} s", file=sys.stderr, flush=True)
    red = 100.0 * (np.asarray(non) - np.asarray(fine)) / np.asarray(non)
    fine_i, non_i, red_i = Interval.from_samples(fine), Interval.from_samples(non), Interval.from_samples(red)
    out = {
        SCHEMA_KEY: schema_id("bench.coop-vs-noncoop"),
        "library": args.library,
        "beamformer": args.beamformer,
        "full_band_noise": args.full_band_noise,
        "set": overrides,
        "slots": args.slots,
        "seeds": args.seeds,
        args.policy: fine_i.to_json(),
        "noncoop": non_i.to_json(),
        "reduction_pct": red_i.to_json(),
        "per_seed": {args.policy: fine, "noncoop": non},
    }
    print(
        f"{args.library}, {args.beamformer}, {args.seeds} seeds x {args.slots} slots"
        f"{' (noncoop charged the full band noise)' if args.full_band_noise else ''}"
        f"{' ' + str(overrides) if overrides else ''}: "
        f"{args.policy} {fine_i.format('.3f')} s, noncoop {non_i.format('.3f')} s, "
        f"fine vs noncoop {red_i.format('.1f')} %"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
