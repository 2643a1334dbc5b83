"""Fine vs coarse caching split into a storage part and a delivery part, paired over seeds.

    .venv/bin/python benchmarks/fine_vs_coarse_split.py --library hub-catalogue --seeds 10 --slots 3 \\
        --out benchmarks/results/fine_vs_coarse_split_hub.json

One policy (greedy by default) runs in the four cooperative modes of delivery/modes.py on the
same scenario per seed (seed s: the same users, requests and channels in every mode):

    fine            PB-deduplicated storage, one broadcast per PB
    coarse-storage  whole-model storage (a shared PB paid per model), one broadcast per PB
    coarse-delivery PB-deduplicated storage, one unit per requested model
    coarse          whole-model storage, one unit per requested model

With D the mean delay of a mode, coarse - fine = storage part + delivery part + interaction:

    storage part  = D(coarse-storage) - D(fine)
    delivery part = D(coarse-delivery) - D(fine)
    interaction   = D(coarse) - D(coarse-storage) - D(coarse-delivery) + D(fine)

`--mode-policy MODE=POLICY` runs another policy in one mode, e.g. the registry's count-based
baselines `coarse-storage`, `coarse-delivery` and `coarse` in theirs (greedy's placement becomes
whole models through the PBs it chose, which ignores which fine-tune is asked for).

Reported: each mode's mean delay with its 95 % t-interval over seeds, and every part as a paired
per-seed difference (s) with its 95 % t-interval; per mode also the mean delay breakdown (airtime,
preparation, waiting, retransmission), hit ratios and traffic, so a part can be read as more
airtime (shared PBs sent again) or more preparation (less served from caches). The JSON is
rewritten after every seed, so an interrupted run keeps the seeds it finished.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import paired_difference, run_policy
from delivery.interval import Interval
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import versioned
from pbkit.errors import PbkitError
from pbkit.library import resolve_library

MODES = ("fine", "coarse-storage", "coarse-delivery", "coarse")


def parts(per_seed: dict[str, list[float]]) -> dict[str, dict]:
    """Paired per-seed differences (s): total coarse - fine and its storage, delivery and
    interaction parts (they add up to the total seed by seed)."""
    d = {m: np.asarray(per_seed[m], dtype=float) for m in MODES}
    interaction = d["coarse"] - d["coarse-storage"] - d["coarse-delivery"] + d["fine"]
    return {
        "total (coarse - fine)": paired_difference(d["coarse"], d["fine"]),
        "storage part (coarse-storage - fine)": paired_difference(d["coarse-storage"], d["fine"]),
        "delivery part (coarse-delivery - fine)": paired_difference(d["coarse-delivery"], d["fine"]),
        "interaction": {**Interval.from_samples(interaction).to_json(), "per_seed_diff": interaction.tolist()},
    }


BREAKDOWN = ("airtime", "preparation", "waiting", "retransmission")
FIGURES = ("hit_ratio_local", "hit_ratio_edge", "cloud_bytes", "backhaul_bytes")


def mode_figures(runs: list[dict]) -> dict:
    """Mean over seeds of one mode's breakdown (s), hit ratios and traffic per run."""
    out = {f"{k}_s": float(np.mean([r["breakdown_s"][k] for r in runs])) for k in BREAKDOWN}
    out.update({k: float(np.mean([r[k] for r in runs])) for k in FIGURES})
    return out


def summary(
    args: argparse.Namespace, per_seed: dict[str, list[float]], wall: float, runs: dict[str, list[dict]] | None = None
) -> dict:
    out: dict = {
        "library": args.library,
        "policy": args.policy,
        "mode_policy": policies_by_mode(args),
        "beamformer": args.beamformer,
        "set": dict(kv.split("=", 1) for kv in args.set),
        "slots": args.slots,
        "seeds": list(range(len(per_seed["fine"]))),
        "modes": {
            m: {"mean_delay_s": Interval.from_samples(per_seed[m]).to_json(), **(mode_figures(runs[m]) if runs else {})}
            for m in MODES
        },
        "per_seed": per_seed,
        "wall_s": wall,
    }
    if len(per_seed["fine"]) >= 2:
        out["parts_s"] = parts(per_seed)
        reduction = 100 * (1 - np.asarray(per_seed["fine"]) / np.asarray(per_seed["coarse"]))
        out["fine_vs_coarse_reduction_pct"] = Interval.from_samples(reduction).to_json()
    return versioned("bench.fine-vs-coarse-split", out)


def policies_by_mode(args: argparse.Namespace) -> dict[str, str]:
    """The policy run in each mode: --policy, or a --mode-policy MODE=POLICY override."""
    out = {m: args.policy for m in MODES}
    for item in args.mode_policy:
        mode, _, policy = item.partition("=")
        if mode not in MODES or not policy:
            raise ValueError(f"--mode-policy {item!r}: need MODE=POLICY with MODE one of {', '.join(MODES)}")
        out[mode] = policy
    return out


def markdown(result: dict) -> str:
    lines = [
        "| mode | mean delay (s) | airtime (s) | preparation (s) | waiting (s) | local hit | edge hit |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, c in result["modes"].items():
        lines.append(
            f"| {m} | {Interval.from_json(c['mean_delay_s']).format('.3f')} | {c.get('airtime_s', float('nan')):.3f} | "
            f"{c.get('preparation_s', float('nan')):.3f} | {c.get('waiting_s', float('nan')):.3f} | "
            f"{c.get('hit_ratio_local', float('nan')):.3f} | {c.get('hit_ratio_edge', float('nan')):.3f} |"
        )
    if "parts_s" in result:
        lines += ["", "| part | paired difference (s) | 95 % interval |", "|---|---|---|"]
        for name, p in result["parts_s"].items():
            d = Interval.from_json(p)
            lines.append(f"| {name} | {d.mean:+.3f} | {d.format_range('+.3f')} |")
        r = Interval.from_json(result["fine_vs_coarse_reduction_pct"])
        lines.append(f"\nfine vs coarse: {r.format('.1f')} % lower mean delay (paired)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default="hub-catalogue")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--slots", type=int, default=3)
    ap.add_argument("--policy", default="greedy", help="the policy run in every mode")
    ap.add_argument("--mode-policy", action="append", default=[], help="MODE=POLICY: another policy in one mode")
    ap.add_argument("--beamformer", default="robust")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE scenario override (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here (after every seed)")
    args = ap.parse_args()
    if args.seeds < 2:
        print(f"pbkit: error: --seeds {args.seeds}: need at least 2 seeds for an interval", file=sys.stderr)
        return 2
    try:
        chosen = policies_by_mode(args)
    except ValueError as exc:
        print(f"pbkit: error: {exc}", file=sys.stderr)
        return 2
    try:
        library = resolve_library(args.library)
        cfg = ScenarioConfig.build(None, [f"beamformer={args.beamformer}", *args.set])
    except PbkitError as exc:
        print(f"pbkit: error: {exc}", file=sys.stderr)
        return 2
    per_seed: dict[str, list[float]] = {m: [] for m in MODES}
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    start = time.perf_counter()
    for seed in range(args.seeds):
        for m in MODES:
            res = run_policy(cfg.replace(mode=m), library, chosen[m], args.slots, seed).summary()
            if res["mode"] != m:  # a baseline carries its own mode, which run_policy lets win
                print(f"pbkit: error: policy {chosen[m]!r} runs in mode {res['mode']!r}, not {m!r}", file=sys.stderr)
                return 2
            per_seed[m].append(res["mean_delay_s"])
            runs[m].append(res)
        print(f"seed {seed}: " + "  ".join(f"{m} {per_seed[m][-1]:.3f} s" for m in MODES), file=sys.stderr, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            out = summary(args, per_seed, time.perf_counter() - start, runs)
            atomic_write_json(args.out, {**out, "runs": runs}, indent=1)
    result = summary(args, per_seed, time.perf_counter() - start, runs)
    print(markdown(result))
    print(
        f"\n{args.seeds} seeds x {args.slots} slots, policy {args.policy}, library {args.library}, {result['wall_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
