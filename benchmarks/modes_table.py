"""Fine vs coarse vs non-cooperative caching from a `pbkit sweep` over cache_fraction.

    pbkit sweep --library LIB --policies random,popular,lfu,greedy,coarse,noncoop --seeds 5 \\
        --slots 5 --grid cache_fraction=0.1,0.2,0.3 --out DIR
    .venv/bin/python benchmarks/modes_table.py DIR [--out DIR/modes.json]

Prints, per cache fraction, every policy's mean delay with its 95 % t-interval over seeds, the
ranking, and the paired (same seed) per-seed reduction of the best fine-grained policy at that
fraction against coarse and against noncoop, 100 (base - fine) / base, with its 95 % interval.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from delivery.interval import Interval
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import versioned

FINE = ("random", "popular", "lfu", "greedy")


def table(sweep_dir: Path) -> dict:
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    by = defaultdict(dict)  # fraction -> policy -> seed -> delay
    for r in rows:
        by[float(r["cache_fraction"])].setdefault(r["policy"], {})[int(r["seed"])] = float(r["mean_delay_s"])
    out = {}
    for frac in sorted(by):
        pol = by[frac]
        means = {p: Interval.from_samples(v.values()) for p, v in pol.items()}
        fine = [p for p in FINE if p in pol]
        best = min(fine, key=lambda p: means[p].mean)
        cell = {
            "policies": {p: {"mean_delay_s": iv.to_json(), "per_seed": pol[p]} for p, iv in means.items()},
            "ranking": sorted(means, key=lambda p: means[p].mean),
            "best_fine": best,
        }
        for base in ("coarse", "noncoop"):
            if base in pol:
                seeds = sorted(set(pol[base]) & set(pol[best]))
                red = [100 * (pol[base][s] - pol[best][s]) / pol[base][s] for s in seeds]
                cell[f"fine_vs_{base}_pct"] = Interval.from_samples(red).to_json()
        out[str(frac)] = cell
    return versioned("bench.modes-table", {"fractions": out})


def markdown(result: dict) -> str:
    """The table of a `table()` result (its `fractions`)."""
    result = result["fractions"]
    policies = list(next(iter(result.values()))["policies"])
    lines = [
        "| cache_fraction | " + " | ".join(policies) + " | best fine vs coarse | vs noncoop |",
        "|---" * (len(policies) + 3) + "|",
    ]
    for frac, cell in result.items():
        row = [frac] + [Interval.from_json(cell["policies"][p]["mean_delay_s"]).format(".3g") for p in policies]
        for base in ("coarse", "noncoop"):
            r = cell.get(f"fine_vs_{base}_pct")
            row.append(f"{cell['best_fine']}: {Interval.from_json(r).format('.1f')} %" if r else "n/a")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = table(args.sweep_dir)
    print(markdown(result))
    for frac, cell in result["fractions"].items():
        print(f"{frac}: ranking {' < '.join(cell['ranking'])}")
    out = args.out or args.sweep_dir / "modes.json"
    atomic_write_json(out, result, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
