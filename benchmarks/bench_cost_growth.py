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
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import versioned
from pbkit.library import resolve_library, synthetic_library


def slot_seconds(cfg: ScenarioConfig, library, slots: int, seed: int = 0) -> dict:
    sim = Simulator(cfg, library, np.random.default_rng(seed))
    policy = make_policy("lfu")
    rng = np.random.default_rng(seed + 1)
    wall, cpu, designs = [], [], 0
    for _ in range(slots):
        x = policy.place(sim.policy_view(), rng)
        t, c = time.perf_counter(), time.process_time()
        r = sim.step(x)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        designs += r.solver_calls
    # CPU seconds too: steadier than wall time when other jobs share the cores
    return {
        "slot_s": float(np.mean(wall)),
        "slot_cpu_s": float(np.mean(cpu)),
        "designs_per_slot": designs / slots,
        "n_pbs": sim.n_pbs,
    }


def exponent(xs: list[float], ys: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def plot(growth: dict[str, dict], path: Path) -> None:
    """The log-log panels of slot time against K, N and J (wall and CPU, with their fits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (name, g) in zip(axes, growth.items()):
        xs = np.array([r["x"] for r in g["rows"]], dtype=float)
        for key, expo, label in (("slot_s", "exponent", "wall"), ("slot_cpu_s", "cpu_exponent", "CPU")):
            ts = np.array([r[key] for r in g["rows"]])
            ax.loglog(xs, ts, "o-", label=f"{label}, measured")
            fit = np.exp(np.polyfit(np.log(xs), np.log(ts), 1)[1]) * xs ** g[expo]
            ax.loglog(xs, fit, "--", label=f"{label} fit: {name}^{g[expo]:.2f}")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])  # the measured values, not overlapping log ticks
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(name)
        ax.set_ylabel("mean slot time, wall or CPU (s)")
        ax.legend(fontsize=7)
    fig.suptitle("slot cost growth, robust beamformer (benchmarks/bench_cost_growth.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


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
    ap.add_argument("--replot", type=Path, default=None, help="only draw --plot from this run's --out JSON")
    args = ap.parse_args()
    if args.replot:
        if not args.plot:
            print("bench_cost_growth: --replot needs --plot", file=sys.stderr)
            return 2
        plot(json.loads(args.replot.read_text())["growth"], args.plot)
        return 0
    base = ScenarioConfig()
    library = resolve_library(args.library)
    out: dict = {"command": " ".join(["benchmarks/bench_cost_growth.py", *sys.argv[1:]]), "library": args.library}
    out["load_average_at_start"] = list(os.getloadavg())
    robust = slot_seconds(base, library, args.slots)
    mrt = slot_seconds(base.replace(beamformer="mrt"), library, args.slots)
    frozen = slot_seconds(base.replace(fading_states=1), library, args.slots)  # one fading state per slot
    out["default"] = {
        "robust": robust,
        "mrt": mrt,
        "robust_one_fading_state": frozen,
        "ratio_to_mrt": robust["slot_s"] / mrt["slot_s"],
        "cpu_ratio_to_mrt": robust["slot_cpu_s"] / mrt["slot_cpu_s"],
    }
    print(
        f"default slot on {args.library}: robust {robust['slot_s']:.3f} s, {robust['slot_cpu_s']:.3f} CPU s "
        f"({robust['designs_per_slot']:.0f} designs), mrt {mrt['slot_s']:.3f} s, {mrt['slot_cpu_s']:.3f} CPU s, "
        f"ratio {robust['slot_s'] / mrt['slot_s']:.1f}x (CPU {robust['slot_cpu_s'] / mrt['slot_cpu_s']:.1f}x); "
        f"robust with one fading state per slot "
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
            print(
                f"{name} = {x}: {r['slot_s']:.3f} s/slot ({r['slot_cpu_s']:.3f} CPU s), "
                f"{r['designs_per_slot']:.0f} designs",
                flush=True,
            )
        xs = [r["x"] for r in rows]
        growth[name] = {
            "rows": rows,
            "exponent": exponent(xs, [r["slot_s"] for r in rows]),
            "cpu_exponent": exponent(xs, [r["slot_cpu_s"] for r in rows]),
        }
        print(
            f"{name}: slot time ~ {name}^{growth[name]['exponent']:.2f} (CPU time ~ {name}^{growth[name]['cpu_exponent']:.2f})",
            flush=True,
        )
    out["growth"] = growth
    out["machine"] = {"python": platform.python_version(), "load_average_at_end": list(os.getloadavg())}
    print(
        "\n| varied | values | mean slot time (s) | fitted exponent | mean slot CPU time (s) | fitted exponent |"
        "\n|---|---|---|---|---|---|"
    )
    for name, g in growth.items():
        xs = ", ".join(str(r["x"]) for r in g["rows"])
        ts = ", ".join(f"{r['slot_s']:.3f}" for r in g["rows"])
        cs = ", ".join(f"{r['slot_cpu_s']:.3f}" for r in g["rows"])
        print(f"| {name} | {xs} | {ts} | {g['exponent']:.2f} | {cs} | {g['cpu_exponent']:.2f} |")
    if args.out:
        atomic_write_json(args.out, versioned("bench.cost-growth", out), indent=1)
    if args.plot:
        plot(growth, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
