"""Data augmentation from a cold start: does DA reach 90 % of the final performance in fewer real slots?

With the default greedy warm start no training run improves on its first validation, so the
paper's claim (DA speeds learning up) cannot be measured there (docs/results.md §2.3). This reads
two `pbkit learn report` runs without the warm start (benchmarks/configs/cold-start*.yaml):

    pbkit learn report --train-config benchmarks/configs/cold-start.yaml --variants maasn-da,maasn-noda \\
        --out BASE --library .pbkit-demo/library.json --train-seeds 0-4 \\
        --eval-seeds 2000-2002 --slots 2 --set heuristics=greedy,lfu --set headroom=false \\
        --set capacities= --set csi_errors= --set optimum_seeds= --workers 2
    pbkit learn report --train-config benchmarks/configs/cold-start-da-forced.yaml --variants maasn-da \\
        --out FORCED ...   (same options)
    .venv/bin/python benchmarks/da_cold_start.py --base BASE --forced FORCED \\
        --png docs/figures/da-cold-start.png --json benchmarks/results/da_cold_start.json

(the two results files of 2 Dec 2026 are committed: --base docs/figures/da-cold-base-results.json
--forced docs/figures/da-cold-forced-results.json redraws the figure and summary from them) and
prints, per training seed, the real slots until the validation delay covered 90 % of its
first-to-best reduction (learning.report.steps_to_fraction), the synthetic share DA used, the
test-seed ratio to greedy, and greedy's own validation delay on the same validation seeds and
scenario (run here through the one harness) as the level to compare the curves with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from delivery.interval import Interval
from learning.config import TrainConfig
from learning.evaluate import evaluate_policies
from learning.report import steps_to_fraction
from learning.trainer import scenario_of
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import check_schema, versioned
from pbkit.library import resolve_library


def load(path: Path) -> dict:
    """A learn report's results.json, given its directory or the file itself. Raises SchemaError
    for a file of another kind or version."""
    file = path / "results.json" if path.is_dir() else path
    return check_schema(json.loads(file.read_text()), "learn-report", str(file))


def greedy_validation(results: dict, library: str) -> float:
    """Greedy's mean delay on the trainer's validation seeds, slots and training scenario, through
    the trainer's own validation path (learning.trainer.scenario_of + evaluate_policies)."""
    cfg = TrainConfig.from_dict(results["train_config"])
    values = evaluate_policies(
        scenario_of(cfg), resolve_library(library), {"greedy": None}, list(cfg.val_seeds), cfg.eval_slots
    )
    return float(np.mean(values["greedy"]))


def summarise(results: dict, variant: str, label: str) -> dict:
    curves = results["curves"][variant]
    steps = [steps_to_fraction(c) for c in curves]
    per_seed = {k.split("/", 1)[1]: v for k, v in results["paired"].items() if k.startswith(variant + "/")}
    return {
        "label": label,
        "steps_to_90pct": steps,
        "first_validation_s": [c[0]["eval_delay_s"] for c in curves],
        "best_validation_s": [min(r["eval_delay_s"] for r in c) for c in curves],
        "final_validation_s": [c[-1]["eval_delay_s"] for c in curves],
        "mean_synthetic_share": float(np.mean([np.mean([r["synthetic_share"] for r in c]) for c in curves])),
        "synthetic_steps": [c[-1]["synthetic_steps"] for c in curves],
        "test_ratio_to_greedy": {k: v["ratio"] for k, v in per_seed.items()},
        "test_ratio_pooled": results["paired"][variant]["ratio"],
        "test_diff_s": Interval.from_json(results["paired"][variant]).to_json(),
        "curve_steps": [r["step"] for r in curves[0]],
        "mean_curve_s": np.mean([[r["eval_delay_s"] for r in c] for c in curves], axis=0).tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--base", type=Path, required=True, help="learn report dir (or its results.json) with maasn-da and maasn-noda"
    )
    ap.add_argument(
        "--forced", type=Path, required=True, help="learn report dir (or its results.json) with maasn-da, DA forced on"
    )
    ap.add_argument("--library", default=".pbkit-demo/library.json", help="the library both reports trained on")
    ap.add_argument("--png", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    base, forced = load(args.base), load(args.forced)
    rows = [
        summarise(base, "maasn-noda", "no DA"),
        summarise(base, "maasn-da", "DA (share follows skill)"),
        summarise(forced, "maasn-da", "DA forced (share 0.5 whenever skill > 0)"),
    ]
    greedy = greedy_validation(base, args.library)
    for r in rows:
        print(
            f"{r['label']}: steps to 90 % {r['steps_to_90pct']}, first/best/final validation "
            f"{np.round(r['first_validation_s'], 2).tolist()} / {np.round(r['best_validation_s'], 2).tolist()} / "
            f"{np.round(r['final_validation_s'], 2).tolist()}, mean synthetic share {r['mean_synthetic_share']:.3f}, "
            f"test ratio to greedy {r['test_ratio_pooled']:.3f} (diff CI {Interval.from_json(r['test_diff_s']).format_range()})"
        )
    print(f"greedy on the same validation seeds and scenario: {greedy:.3f} s")
    report = versioned("bench.da-cold-start", {})
    report |= {"base": str(args.base), "forced": str(args.forced), "greedy_validation_s": greedy, "variants": rows}
    if args.json:
        atomic_write_json(args.json, report, indent=1)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for r in rows:
            ax.plot(r["curve_steps"], r["mean_curve_s"], marker="o", ms=3, label=r["label"])
        ax.axhline(greedy, color="k", ls="--", lw=1, label="greedy (same validation)")
        ax.set_xlabel("real environment steps (slots)")
        ax.set_ylabel("validation mean delay (s), mean of 5 seeds")
        ax.set_title("cold start (no warm start): with and without DA", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
