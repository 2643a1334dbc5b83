"""Slot time of two checkouts, interleaved, for a before/after on a shared machine.

    .venv/bin/python benchmarks/ab_slot_time.py /tmp/before-checkout . --library hub-catalogue

Each round runs, in fresh processes and in turn, the default scenario on `--library` for
`--slots` slots (LFU placement, seed 0, as bench_cost_growth.py's headline) with each beamformer
of `--beamformers` in checkout A, then in checkout B. Rounds alternate which checkout goes first,
so load that drifts over minutes falls on both. Printed per checkout and beamformer: the median
over rounds of the mean wall and CPU seconds of `Simulator.step`, and B's ratio to A; CPU time is
the steadier of the two when other jobs share the cores. The machine is not idle-checked: read
the load average printed at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import versioned

CHILD = """
import json, sys, time
import numpy as np
from delivery.config import ScenarioConfig
from delivery.policies import make_policy
from delivery.simulator import Simulator
from pbkit.library import resolve_library
library, beamformer, slots = sys.argv[1], sys.argv[2], int(sys.argv[3])
sim = Simulator(ScenarioConfig().replace(beamformer=beamformer), resolve_library(library), np.random.default_rng(0))
policy, rng = make_policy("lfu"), np.random.default_rng(1)
wall = cpu = 0.0
delays = []
for _ in range(slots):
    x = policy.place(sim.policy_view(), rng)
    w, c = time.perf_counter(), time.process_time()
    r = sim.step(x)
    wall += time.perf_counter() - w
    cpu += time.process_time() - c
    delays.append(r.mean_delay_s)
print(json.dumps({"wall": wall / slots, "cpu": cpu / slots, "delays": delays}))
"""


def once(checkout: Path, library: str, beamformer: str, slots: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, library, beamformer, str(slots)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="checkout A (before)")
    ap.add_argument("b", type=Path, help="checkout B (after)")
    ap.add_argument("--library", default="hub-catalogue")
    ap.add_argument("--slots", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--beamformers", default="robust,mrt")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    for d in (args.a, args.b):
        if not (d / "delivery" / "simulator.py").is_file():
            print(f"ab_slot_time: {d} is not a checkout (no delivery/simulator.py)", file=sys.stderr)
            return 2
    print(f"load average at start: {os.getloadavg()}", flush=True)
    runs: dict[str, dict[str, list[dict]]] = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for bf in args.beamformers.split(","):
            for side in "AB" if r % 2 == 0 else "BA":
                res = once(args.a if side == "A" else args.b, args.library, bf, args.slots)
                runs[side].setdefault(bf, []).append(res)
                print(f"round {r} {side} {bf}: wall {res['wall']:.3f} s, cpu {res['cpu']:.3f} s per slot", flush=True)
    summary: dict = {"load_average_at_end": list(os.getloadavg()), "library": args.library, "slots": args.slots}
    for bf in args.beamformers.split(","):
        row = {}
        for side in ("A", "B"):
            row[side] = {k: float(np.median([x[k] for x in runs[side][bf]])) for k in ("wall", "cpu")}
        same = all(x["delays"] == runs["A"][bf][0]["delays"] for x in runs["A"][bf] + runs["B"][bf])
        row["same_delays"] = same
        summary[bf] = row
        print(
            f"{bf}: A wall {row['A']['wall']:.3f} s / cpu {row['A']['cpu']:.3f} s, "
            f"B wall {row['B']['wall']:.3f} s / cpu {row['B']['cpu']:.3f} s per slot; "
            f"B/A wall {row['B']['wall'] / row['A']['wall']:.2f}, cpu {row['B']['cpu'] / row['A']['cpu']:.2f}; "
            f"same mean delays in every run: {same}"
        )
    bfs = args.beamformers.split(",")
    if "robust" in bfs and "mrt" in bfs:
        for side in ("A", "B"):
            ratio = summary["robust"][side]["cpu"] / summary["mrt"][side]["cpu"]
            print(f"{side}: robust / mrt slot, cpu: {ratio:.2f}x")
    print(f"load average at end: {os.getloadavg()}")
    if args.out:
        atomic_write_json(args.out, versioned("bench.ab-slot-time", summary), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
