"""How the simulator's slot cost grows with users K, ENs N and PBs J, and the default slot's cost
against an MRT slot in the same run (issue 15 section 6).

    .venv/bin/python benchmarks/bench_cost_growth.py --library edge-catalogue --slots 3 \
        --out benchmarks/results/cost_growth.json --plot docs/figures/cost_growth.png

Headline: the default scenario (robust beamformer) on `--library`, mean wall time of `step` over
`--slots` slots (placement by LFU, outside the timer), and the same with `beamformer: mrt`, whose
ratio says what the design costs on top (the machine is shared; absolute times move with load).
Growth: the default scenario with one of K (users), N (ENs) or J (PBs) changed; J varies over
synthetic libraries of 2 families x 6 models with base_pbs = 6..48 PBs of the same total bytes.
The exponent is the least-squares slope of log(slot time) on log(K, N or J).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from delivery.config import ScenarioConfig
from delivery.policies import make_policy
from delivery.simulator import Simulator
from pbkit.common.schema import versioned
from pbkit.library import resolve_library, synthetic_library


def slot_seconds(cfg: ScenarioConfig, library, slots: int, seed: int = 0) -> dict:
    sim = Simulator(cfg, library, np.random.default_rng(seed))
    policy = make_policy("lfu")
    rng = np.random.default_rng(seed + 1)
    wall, designs = [], 0
    for _ in range(slots):
        x = policy.place(sim.policy_view(), rng)
        t = time.perf_counter()
        r = sim.step(x)
        wall.append(time.perf_counter() - t)
        designs += r.solver_calls
    return {"slot_s": float(np.mean(wall)), "designs_per_slot": designs / slots, "n_pbs": sim.n_pbs}


def exponent(xs: list[float], ys: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default="edge-catalogue")
    ap.add_argument("--slots", type=int, default=3)
    ap.add_argument("--users", default="5,10,20,40")
    ap.add_argument("--nodes", default="2,4,7")
    ap.add_argument("--base-pbs", default="6,12,24,48")
    ap.add_argument("--skip-growth", action="store_true", help="only the default slot against mrt")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    base = ScenarioConfig()
    library = resolve_library(args.library)
    out: dict = {"command": " ".join(["benchmarks/bench_cost_growth.py", *sys.argv[1:]]), "library": args.library}
    robust = slot_seconds(base, library, args.slots)
    mrt = slot_seconds(base.replace(beamformer="mrt"), library, args.slots)
    frozen = slot_seconds(base.replace(fading_states=1), library, args.slots)  # one fading state per slot
    out["default"] = {
        "robust": robust,
        "mrt": mrt,
        "robust_one_fading_state": frozen,
        "ratio_to_mrt": robust["slot_s"] / mrt["slot_s"],
    }
    print(
        f"default slot on {args.library}: robust {robust['slot_s']:.3f} s "
        f"({robust['designs_per_slot']:.0f} designs), mrt {mrt['slot_s']:.3f} s, "
        f"ratio {robust['slot_s'] / mrt['slot_s']:.1f}x; robust with one fading state per slot "
        f"{frozen['slot_s']:.3f} s ({frozen['designs_per_slot']:.0f} designs, "
        f"{frozen['slot_s'] / mrt['slot_s']:.1f}x mrt)",
        flush=True,
    )
    if args.skip_growth:
        print(json.dumps(out["default"], indent=1))
        return 0
    growth: dict[str, dict] = {}
    syn = synthetic_library(np.random.default_rng(0))
    for name, values, make in (
        ("K", [int(v) for v in args.users.split(",")], lambda v: (base.replace(n_users=v), syn)),
        ("N", [int(v) for v in args.nodes.split(",")], lambda v: (base.replace(n_nodes=v), syn)),
        (
            "J",
            [int(v) for v in args.base_pbs.split(",")],
            lambda v: (
                base,
                synthetic_library(
                    np.random.default_rng(0), base_pbs=v, own_pbs=max(1, v // 3), mean_pb_bytes=8e6 * 12 / v
                ),
            ),
        ),
    ):
        rows = []
        for v in values:
            cfg, lib = make(v)
            r = slot_seconds(cfg, lib, args.slots)
            x = r["n_pbs"] if name == "J" else v
            rows.append({"x": x, **r})
            print(f"{name} = {x}: {r['slot_s']:.3f} s/slot, {r['designs_per_slot']:.0f} designs", flush=True)
        growth[name] = {"rows": rows, "exponent": exponent([r["x"] for r in rows], [r["slot_s"] for r in rows])}
        print(f"{name}: slot time ~ {name}^{growth[name]['exponent']:.2f}", flush=True)
    out["growth"] = growth
    out["machine"] = {"python": platform.python_version(), "load_average_at_end": list(os.getloadavg())}
    print("\n| varied | values | mean slot time (s) | fitted exponent |\n|---|---|---|---|")
    for name, g in growth.items():
        xs = ", ".join(str(r["x"]) for r in g["rows"])
        ts = ", ".join(f"{r['slot_s']:.3f}" for r in g["rows"])
        print(f"| {name} | {xs} | {ts} | {g['exponent']:.2f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(versioned("bench.cost-growth", out), indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        for ax, (name, g) in zip(axes, growth.items()):
            xs = np.array([r["x"] for r in g["rows"]], dtype=float)
            ts = np.array([r["slot_s"] for r in g["rows"]])
            ax.loglog(xs, ts, "o-", label="measured")
            fit = np.exp(np.polyfit(np.log(xs), np.log(ts), 1)[1]) * xs ** g["exponent"]
            ax.loglog(xs, fit, "--", label=f"fit: {name}^{g['exponent']:.2f}")
            ax.set_xlabel(name)
            ax.set_ylabel("mean slot time (s)")
            ax.legend()
        fig.suptitle("slot cost growth, robust beamformer (benchmarks/bench_cost_growth.py)")
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
