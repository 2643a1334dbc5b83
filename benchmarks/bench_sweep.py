"""Sweep engine speed: the same sweep of >= 16 cells on embedded Ray with 2 workers against 1
(ratio, one run each), the per-cell cost in-process, Ray's start-up and its per-task overhead.
docs/experiments.md turns these into what a cluster of M machines would give.

    .venv/bin/python benchmarks/bench_sweep.py [--quick] [--out bench-results/bench_sweep.json]

Ray start-up is timed apart from the sweeps (each sweep runs inside an already started Ray), so
the ratio is that of the parallel phase; the reference (1 worker) is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per cell, as Ray gives its workers

import numpy as np  # noqa: E402

from delivery.config import ScenarioConfig  # noqa: E402
from delivery.engine import Cell, ray_session, run_cells  # noqa: E402
from delivery.sweep import build_sweep, parse_grid, sweep_task  # noqa: E402
from pbkit.common.fs import atomic_write_json  # noqa: E402
from pbkit.common.schema import versioned  # noqa: E402
from pbkit.library import synthetic_library  # noqa: E402


def _noop(params: dict, shared) -> dict:
    return {"x": params["i"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer slots per cell (for a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/bench_sweep.json"))
    args = parser.parse_args()
    slots = 2 if args.quick else 6
    library = synthetic_library(np.random.default_rng(0))
    sweep = build_sweep(
        lambda extra: ScenarioConfig.build(None, extra),
        parse_grid(["cache_fraction=0.2,0.4"]),
        ["lfu", "greedy"],
        [0, 1, 2, 3],
        slots,
    )
    cells = sweep.cells(library)
    n = len(cells)
    assert n >= 16
    figures: dict = {
        "cells": n,
        "slots_per_cell": slots,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        # a ratio measured on a busy machine says little: keep the load beside it
        "loadavg_1min_before": os.getloadavg()[0],
    }

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_cells(cells, sweep_task, Path(tmp) / "inline", shared=library, executor="inline")
        figures["inline_s"] = time.perf_counter() - t
        figures["per_cell_s"] = figures["inline_s"] / n
        print(
            f"in-process: {n} cells in {figures['inline_s']:.2f} s, {figures['per_cell_s']:.3f} s per cell", flush=True
        )

        for workers in (1, 2):
            t = time.perf_counter()
            with ray_session(workers=workers):
                figures[f"ray_start_s_{workers}"] = time.perf_counter() - t
                # warm the worker pool (process start and imports), then time the sweep alone
                run_cells([Cell({"i": i}) for i in range(2 * workers)], _noop, Path(tmp) / f"warm{workers}")
                t = time.perf_counter()
                run_cells(cells, sweep_task, Path(tmp) / f"ray{workers}", shared=library, workers=workers)
                figures[f"ray_{workers}_workers_s"] = time.perf_counter() - t
                if workers == 1:
                    # per-task overhead: no-op cells, recorded and written like real ones
                    m = 200
                    t = time.perf_counter()
                    run_cells([Cell({"i": i}) for i in range(m)], _noop, Path(tmp) / "noop")
                    figures["ray_overhead_per_task_s"] = (time.perf_counter() - t) / m
            print(
                f"ray, {workers} worker(s): start {figures[f'ray_start_s_{workers}']:.1f} s, "
                f"sweep {figures[f'ray_{workers}_workers_s']:.2f} s",
                flush=True,
            )

    figures["loadavg_1min_after"] = os.getloadavg()[0]
    figures["speedup_2_vs_1"] = figures["ray_1_workers_s"] / figures["ray_2_workers_s"]
    figures["ray_vs_inline_1_worker"] = figures["ray_1_workers_s"] / figures["inline_s"]
    print(
        f"2 workers vs 1: x{figures['speedup_2_vs_1']:.2f} (ideal x2.00); "
        f"Ray 1 worker / in-process: x{figures['ray_vs_inline_1_worker']:.2f}; "
        f"Ray overhead per task: {1e3 * figures['ray_overhead_per_task_s']:.1f} ms; "
        f"per cell: {figures['per_cell_s']:.3f} s; load average {figures['loadavg_1min_before']:.1f} "
        f"before, {figures['loadavg_1min_after']:.1f} after on {figures['cpus']} CPUs"
    )
    atomic_write_json(args.out, versioned("bench.sweep", figures), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
