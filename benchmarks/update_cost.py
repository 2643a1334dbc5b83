"""What a training step costs: one real slot (the agents' slot and the reference's replay) against
one learner update, per algorithm and batch size, measured in the same run (CPU seconds; the
ratios are what to read, the machine is shared).

The slot is timed over the first episode of a fresh trainer (the cold actor acting, greedy
replayed for the paired reward); each update is timed `--repeats` times on batches from that
episode's replay. This is the measurement behind the configs' `batch_size` and `update_every`
(docs/learning.md §2, "Updates"; results.md 2.0.4).

    .venv/bin/python benchmarks/update_cost.py --library hub-catalogue [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbkit.common.schema import versioned  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="hub-catalogue")
    ap.add_argument("--batches", default="16,8", help="batch sizes to time")
    ap.add_argument("--algorithms", default="facmac,value")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from learning.config import TrainConfig
    from learning.trainer import Trainer
    from pbkit.library import resolve_library

    library = resolve_library(args.library)
    rows = []
    slot_s = None
    for algorithm in args.algorithms.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            cfg = TrainConfig.build(
                "quick", [f"algorithm={algorithm}", f"batch_size={batch}", "warmup_steps=1000", "da=false"]
            )
            with tempfile.TemporaryDirectory() as tmp:
                trainer = Trainer(cfg, library, Path(tmp), progress=False)
                start = time.process_time()
                trainer._episode(trainer.stats)  # no updates: warmup_steps is beyond the episode
                if slot_s is None:
                    slot_s = (time.process_time() - start) / cfg.episode_slots
                start = time.process_time()
                for _ in range(args.repeats):
                    trainer.learner.update(trainer._batch(), 0.5, True)
                update_s = (time.process_time() - start) / args.repeats
            rows.append({"algorithm": algorithm, "batch_size": batch, "update_cpu_s": update_s})
            print(
                f"{algorithm:7s} batch {batch:3d}: update {update_s:.3f} s CPU = {update_s / slot_s:.2f} x a slot",
                file=sys.stderr,
                flush=True,
            )
    out = {"library": args.library, "slot_cpu_s": slot_s, "updates": rows}
    print(f"one real slot with its greedy replay: {slot_s:.3f} s CPU", file=sys.stderr)
    if args.json:
        print(json.dumps(versioned("bench.update-cost", out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
