"""Demo: the quick MAASN-DA training run, then the learned policy beside the heuristics.

    .venv/bin/python examples/demo_learning.py [WORKDIR]

Uses WORKDIR/library.json (a real PB library from the zoo demo) when present, else the seeded
synthetic library. About two minutes on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from delivery.policies import make_policy
from learning.cli import policy_table
from learning.config import load_config
from learning.evaluate import bootstrap_ci, evaluate
from learning.trainer import Trainer
from pbkit.library import load_library, synthetic_library

SEEDS = (2000, 2001, 2002, 2003, 2004)
SLOTS = 10


def main(workdir: Path) -> None:
    torch.set_num_threads(1)
    workdir = Path(workdir)
    lib_path = workdir / "library.json"
    if lib_path.exists():
        library = load_library(lib_path)
        print(f"library: {lib_path} ({len(library.models)} models, {len(library.pbs)} PBs)")
    else:
        library = synthetic_library(np.random.default_rng(0))
        print(f"library: synthetic ({len(library.models)} models, {len(library.pbs)} PBs); "
              f"no {lib_path}")
    cfg = load_config("quick")
    trainer = Trainer(cfg, library, workdir / "learn-quick", progress=sys.stdout.isatty())
    history = trainer.run()
    print(f"trained {cfg.total_steps} slots in {trainer.wall:.0f} s; eval delay by step: "
          + ", ".join(f"{r['step']}: {r['eval_delay_s']:.2f} s" for r in history))
    rng = np.random.default_rng(0)
    rows = {}
    makers = {"maasn-da": trainer.policy}
    makers |= {name: (lambda name=name: make_policy(name)) for name in ("random", "popular", "lfu", "greedy")}
    for name, make in makers.items():
        values = evaluate(make, library, trainer.scenario, SEEDS, SLOTS)
        lo, hi = bootstrap_ci(values, rng)
        rows[name] = {"mean_delay_s": float(values.mean()), "ci95": [lo, hi]}
    policy_table(rows, f"mean delay over {len(SEEDS)} held-out seeds x {SLOTS} slots")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".pbkit-demo"))
