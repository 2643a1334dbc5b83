"""Robust vs non-robust beamforming in the simulator: mean delay, paired over seeds, per CSI error.

    .venv/bin/python benchmarks/robust_vs_nominal.py --seeds 10 --slots 3 --out bench-results/robust_vs_nominal.json

For every eps in --eps and every seed, the same scenario (users, channels, requests: seed s means
the same draw for every method) is run with the beamformers `robust` (numpy SCA on the exact
worst-case gain) and, leading, the realistic nominal baseline `fast-harq` (the nominal design at
the rate of its estimated SNR, users that fall short recovered by incremental-redundancy HARQ
rounds), then `fast-backoff` (the nominal beamformer, rate from its exact worst case within eps,
so no retransmission inside the bound) and `fast` (the nominal design with a genie resend at the
failed users' true SNR: an optimistic nominal baseline). Reported: mean delay with
95 % t-intervals over seeds, and the paired per-seed reduction 100 (base - robust) / base of
robust against each baseline with its 95 % t-interval. Library: .pbkit-demo/library.json when
present (else the synthetic one), policy lfu, default scenario otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import run_policy
from delivery.interval import Interval
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import SCHEMA_KEY, schema_id
from pbkit.errors import PbkitError
from pbkit.library import resolve_library

DEMO_LIBRARY = ".pbkit-demo/library.json"
METHODS = ("robust", "fast-harq", "fast-backoff", "fast")


UNBOUNDED_S = 1e6  # a mean delay above this means some group had no positive guaranteed rate


def paired_reduction(base: list[float], robust: list[float]) -> dict:
    """Per-seed reduction 100 (base - robust) / base: its 95 % interval over all seeds, and over
    the seeds where the baseline's delay is bounded (`bounded`, an interval, when at least two
    are; `bounded_seeds` their count)."""
    b, r = np.asarray(base), np.asarray(robust)
    red = 100.0 * (b - r) / b
    ok = b <= UNBOUNDED_S
    out = {**Interval.from_samples(red).to_json(), "bounded_seeds": int(ok.sum())}
    if ok.sum() >= 2:
        out["bounded"] = Interval.from_samples(red[ok]).to_json()
    return out


def run(args: argparse.Namespace) -> dict:
    library = resolve_library(args.library)
    base = ScenarioConfig()
    if args.config:
        base = ScenarioConfig.load(args.config)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    out = {
        SCHEMA_KEY: schema_id("bench.robust-vs-nominal"),
        "library": args.library,
        "policy": args.policy,
        "slots": args.slots,
        "seeds": seeds,
        "config": base.to_dict(),
        "eps": {},
    }
    for eps in args.eps:
        per: dict[str, list[float]] = {m: [] for m in args.methods}
        retx: dict[str, list[float]] = {m: [] for m in args.methods}
        wall: dict[str, float] = {m: 0.0 for m in args.methods}
        for seed in seeds:
            for method in args.methods:
                cfg = base.replace(beamformer=method, csi_error=eps)
                res = run_policy(cfg, library, args.policy, args.slots, seed).summary()
                per[method].append(res["mean_delay_s"])
                retx[method].append(res["breakdown_s"]["retransmission"])
                wall[method] += res["wall_s"]
            print(
                f"eps={eps} seed={seed}: " + "  ".join(f"{m} {per[m][-1]:.4f} s" for m in args.methods),
                file=sys.stderr,
                flush=True,
            )
        cell: dict = {"methods": {}, "reduction_pct": {}}
        for m in args.methods:
            cell["methods"][m] = {
                "mean_delay_s": Interval.from_samples(per[m]).to_json(),
                "per_seed": per[m],
                "retransmission_s": float(np.mean(retx[m])),
                "wall_s": wall[m],
            }
        if "robust" in per:
            for m in args.methods:
                if m != "robust":
                    cell["reduction_pct"][m] = paired_reduction(per[m], per["robust"])
        out["eps"][str(eps)] = cell
    return out


def _fmt(cell: dict) -> str:
    delay = Interval.from_json(cell["mean_delay_s"])
    if delay.mean > UNBOUNDED_S:
        n = sum(d > UNBOUNDED_S for d in cell["per_seed"])
        return f"unbounded ({n}/{len(cell['per_seed'])} seeds: a group with worst-case SNR 0)"
    return delay.format(".3f")


def markdown(result: dict) -> str:
    methods = list(next(iter(result["eps"].values()))["methods"])
    baselines = [m for m in methods if m != "robust"]
    head = ["eps"] + [f"{m} mean delay (s)" for m in methods] + [f"robust vs {m} (%)" for m in baselines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for eps, cell in result["eps"].items():
        row = [eps]
        row += [_fmt(cell["methods"][m]) for m in methods]
        for m in baselines:
            red = cell["reduction_pct"].get(m)
            n = len(cell["methods"][m]["per_seed"])
            if red is None:
                row.append("n/a")
            elif red["bounded_seeds"] == n:
                row.append(Interval.from_json(red).format(".1f"))
            elif "bounded" in red:
                row.append(
                    f"{Interval.from_json(red['bounded']).format('.1f')} on the {red['bounded_seeds']} bounded seeds"
                )
            else:
                row.append(f"n/a ({red['bounded_seeds']} bounded seeds)")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default=DEMO_LIBRARY if os.path.exists(DEMO_LIBRARY) else "synthetic")
    ap.add_argument("--config", default=None, help="scenario settings file (default: the default scenario)")
    ap.add_argument("--policy", default="lfu")
    ap.add_argument("--eps", type=lambda s: [float(x) for x in s.split(",")], default=[0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--slots", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    if args.seeds < 2:
        print(f"pbkit: error: --seeds {args.seeds}: need at least 2 seeds for an interval", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        result = run(args)
    except PbkitError as exc:
        print(f"pbkit: error: {exc}", file=sys.stderr)
        return 2
    result["wall_s"] = time.perf_counter() - start
    print(markdown(result))
    print(
        f"\n{len(result['seeds'])} seeds x {args.slots} slots, policy {args.policy}, library {args.library}, "
        f"{result['wall_s']:.0f} s"
    )
    if args.out:
        atomic_write_json(Path(args.out), result, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
