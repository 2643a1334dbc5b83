"""Paired comparisons read off a `pbkit sweep` directory (or a figure-set panel's data directory).

The figure set (docs/results.md part 3) quotes per-seed paired reductions and differences; this
computes them from `DIR/results.csv`, so every quoted number has a command:

    # one series against others at every grid value: mean of per-seed 100 (base - ours) / base
    .venv/bin/python benchmarks/sweep_paired.py docs/figures/paper/data/zoo/capacity \\
        --series policy --ours greedy --against coarse,noncoop,lfu
    .venv/bin/python benchmarks/sweep_paired.py docs/figures/paper/data/zoo/csi \\
        --series beamformer --ours robust --against fast,fast-backoff
    # one series along the grid: per-seed difference (s) to its value at a reference point,
    # and the mean hit ratios and placement-free lower bound at each point
    .venv/bin/python benchmarks/sweep_paired.py /tmp/zipf --series policy --ours greedy --along 0.4
    # the same cells in two directories (e.g. the committed set and a rerun on a rebuilt library)
    .venv/bin/python benchmarks/sweep_paired.py DIR --compare OTHER_DIR

Intervals are 95 % Student-t over seeds (delivery.interval.Interval). The grid key is the
one column of results.csv that is not a result, `policy`, `seed` or `mode` (or --key).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from delivery.interval import Interval
from pbkit.common.schema import versioned

RESULT_COLUMNS = {"mean_delay_s", "hit_ratio_local", "hit_ratio_edge", "delay_lower_bound_s", "wall_s"}


def read_rows(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "results.csv") as fh:
        return list(csv.DictReader(fh))


def grid_key(rows: list[dict], series: str) -> str:
    keys = [k for k in rows[0] if k not in RESULT_COLUMNS | {"policy", "seed", "mode", series}]
    if len(keys) != 1:
        raise SystemExit(f"cannot tell the grid key among {keys}; pass --key")
    return keys[0]


def by_point(
    rows: list[dict], key: str, series: str, name: str, column: str = "mean_delay_s"
) -> dict[str, dict[str, float]]:
    """grid value -> seed -> value of `column` for series == name."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r[series] == name:
            out[r[key]][r["seed"]] = float(r[column])
    return out


def reductions(rows: list[dict], key: str, series: str, ours: str, against: list[str]) -> list[dict]:
    mine = by_point(rows, key, series, ours)
    out = []
    for base in against:
        theirs = by_point(rows, key, series, base)
        for point in sorted(mine, key=float):
            seeds = sorted(set(mine[point]) & set(theirs.get(point, {})), key=int)
            finite = [s for s in seeds if math.isfinite(theirs[point][s])]
            red = [100 * (theirs[point][s] - mine[point][s]) / theirs[point][s] for s in finite]
            out.append(
                {
                    "ours": ours,
                    "base": base,
                    key: point,
                    "reduction_pct": Interval.from_samples(red) if red else None,
                    "seeds": len(finite),
                    "of_seeds": len(seeds),
                }
            )
    return out


def along(rows: list[dict], key: str, series: str, ours: str, reference: str) -> list[dict]:
    delay = by_point(rows, key, series, ours)
    ref = delay[reference]
    out = []
    for point in sorted(delay, key=float):
        seeds = sorted(set(delay[point]) & set(ref), key=int)
        row = {
            "series": ours,
            key: point,
            "mean_delay_s": float(np.mean(list(delay[point].values()))),
            "diff_to_reference_s": Interval.from_samples([delay[point][s] - ref[s] for s in seeds]),
            "seeds": len(seeds),
        }
        for col in ("hit_ratio_local", "hit_ratio_edge", "delay_lower_bound_s"):
            row[col] = float(np.mean(list(by_point(rows, key, series, ours, col)[point].values())))
        out.append(row)
    return out


def compare(a_dir: Path, b_dir: Path) -> dict:
    """Cells with the same settings (the library's digest left out) in two sweep directories."""

    def cells(d: Path) -> dict[str, float]:
        out = {}
        for line in (d / "cells.jsonl").read_text().splitlines():
            cell = json.loads(line)
            params = dict(cell["params"])
            params.pop("library", None)
            out[json.dumps(params, sort_keys=True)] = float(cell["result"]["mean_delay_s"])
        return out

    a, b = cells(a_dir), cells(b_dir)
    common = sorted(set(a) & set(b))
    diffs = [abs(a[k] - b[k]) for k in common]
    rel = [abs(a[k] / b[k] - 1) for k in common if b[k]]
    return {
        "cells": len(common),
        "differing": sum(d > 0 for d in diffs),
        "max_abs_diff_s": max(diffs, default=0.0),
        "max_rel_diff": max(rel, default=0.0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--series", default="policy", help="the column that names a series (policy, beamformer, ...)")
    ap.add_argument("--key", help="the grid key (default: the one grid column)")
    ap.add_argument("--ours", help="the series to compare")
    ap.add_argument("--against", help="comma-separated series to compare with at every grid value")
    ap.add_argument("--along", help="a grid value: differences of --ours to its value there")
    ap.add_argument("--compare", type=Path, help="another sweep directory with the same cells")
    args = ap.parse_args(argv)

    if args.compare is not None:
        print(json.dumps(versioned("bench.sweep-paired-compare", compare(args.sweep_dir, args.compare)), indent=1))
        return 0
    if not args.ours or not (args.against or args.along):
        ap.error("give --ours with --against or --along (or --compare)")
    rows = read_rows(args.sweep_dir)
    key = args.key or grid_key(rows, args.series)
    if args.against:
        for r in reductions(rows, key, args.series, args.ours, args.against.split(",")):
            red = r["reduction_pct"].format(".1f") if r["reduction_pct"] else "n/a"
            print(
                f"{r['ours']} vs {r['base']} at {key}={r[key]}: {red} % "
                f"({r['seeds']} of {r['of_seeds']} seeds with a finite base)"
            )
    if args.along:
        for r in along(rows, key, args.series, args.ours, args.along):
            print(
                f"{r['series']} at {key}={r[key]}: {r['mean_delay_s']:.3f} s, minus {key}={args.along}: "
                f"{r['diff_to_reference_s'].format('+.3f')} s ({r['seeds']} seeds); hit ratio local "
                f"{r['hit_ratio_local']:.3f}, edge {r['hit_ratio_edge']:.3f}; lower bound {r['delay_lower_bound_s']:.3f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
