"""Heuristics on a training config's validation seeds and scenario: the level a learner's
validation curve (metrics.csv `eval_delay_s`) is read against.

    .venv/bin/python benchmarks/validation_level.py --config benchmarks/configs/i16-tight.yaml \\
        --library edge-catalogue --policies greedy,lfu
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--library", required=True)
    ap.add_argument("--policies", default="greedy,lfu")
    args = ap.parse_args(argv)

    from learning.config import load_config
    from learning.evaluate import evaluate_policies, summarise
    from learning.trainer import scenario_of
    from pbkit.common.schema import versioned
    from pbkit.library import resolve_library

    cfg = load_config(args.config)
    names = [p for p in args.policies.split(",") if p]
    values = evaluate_policies(
        scenario_of(cfg), resolve_library(args.library), {p: None for p in names}, list(cfg.val_seeds), cfg.eval_slots
    )
    # learn eval's layout: per policy mean_delay_s, its interval and per_seed
    print(json.dumps(versioned("bench.validation-level", summarise(values, (), ()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
