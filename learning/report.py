"""The evaluation protocol behind `pbkit learn report`: train MAASN-DA and its ablations, run
them beside every delivery heuristic on the same held-out seeded scenarios, and write
results.json plus three plots (learning curves with/without DA, delay vs cache capacity,
robust vs non-robust beamforming across CSI error bounds).

Every figure is a mean over >= 5 evaluation seeds with a 95 % percentile-bootstrap interval.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from delivery.policies import make_policy
from learning.config import VARIANTS, TrainConfig, load_config
from learning.errors import CheckpointError
from learning.evaluate import bootstrap_ci, evaluate
from learning.policy import load_policy
from learning.trainer import Trainer, scenario_of
from pbkit.library import PBLibrary, synthetic_library

HEURISTICS = ("random", "popular", "lfu", "coarse", "noncoop", "greedy")


@dataclass(frozen=True)
class ReportPlan:
    config: str                       # training config: bundled name or YAML path
    train_seeds: tuple[int, ...]
    variants: tuple[str, ...]
    eval_seeds: tuple[int, ...]
    eval_slots: int
    capacities: tuple[float, ...]
    csi_errors: tuple[float, ...]
    robust_users: int
    robust_slots: int
    robust_budget_s: float            # stop the (solver-bound) robust sweep after this long
    optimum_seeds: tuple[int, ...]


QUICK = ReportPlan("quick", (0,), tuple(VARIANTS), (2000, 2001, 2002, 2003, 2004), 10,
                   (0.15, 0.3, 0.5), (0.05, 0.2), 4, 1, 120.0, (2000, 2001, 2002, 2003, 2004))
FULL = ReportPlan("full", (0,), tuple(VARIANTS), (2000, 2001, 2002, 2003, 2004), 20,
                  (0.1, 0.3, 0.5), (0.05, 0.1, 0.2, 0.3), 4, 1, 300.0,
                  (2000, 2001, 2002, 2003, 2004))


def small_library() -> PBLibrary:
    """A library small enough for the exact (MILP) optimum and the SDP beamformers."""
    return synthetic_library(np.random.default_rng(7), families=1, models_per_family=3, base_pbs=4, own_pbs=1)


def _summary(values: np.ndarray, rng: np.random.Generator) -> dict:
    lo, hi = bootstrap_ci(values, rng)
    return {"mean_delay_s": float(np.mean(values)), "ci95": [lo, hi], "per_seed": [float(v) for v in values]}


def _reduction(base: float, new: float) -> float:
    return 100.0 * (base - new) / base if base > 0 else float("nan")


def steps_to_fraction(curve: list[dict], fraction: float = 0.9) -> int | None:
    """First real step where the eval return has covered `fraction` of its first-to-final gain."""
    returns = np.array([r["eval_return"] for r in curve])
    steps = [r["step"] for r in curve]
    gain = returns[-1] - returns[0]
    if gain <= 0:
        return None
    for s, r in zip(steps, returns):
        if r - returns[0] >= fraction * gain:
            return int(s)
    return int(steps[-1])


def feasible_capacities(fractions: tuple[float, ...], library: PBLibrary) -> tuple[list[float], str]:
    """The sweep's cache fractions, each raised to the smallest that holds the largest PB.

    A real library can have one PB (say a layer-grouped embedding) larger than 10 % of the unique
    bytes; the simulator rightly refuses such a capacity, so the sweep moves that point up and
    says so instead of failing after the training runs."""
    unique = library.sharing()["unique_bytes"]
    smallest = float(np.ceil(100.0 * library.pb_sizes().max() / unique) / 100.0)
    chosen = sorted({max(float(f), smallest) for f in fractions})
    raised = [f for f in fractions if f < smallest]
    note = (f"capacity fractions {raised} are below the largest PB "
            f"({int(library.pb_sizes().max())} bytes); swept from {smallest} instead") if raised else ""
    return chosen, note


def _trainer_for(cfg: TrainConfig, library: PBLibrary, run_dir: Path, progress: bool) -> Trainer:
    """Continue (or reuse) a run of the same config in `run_dir`, else start a new one, so that a
    report interrupted after its training phase does not retrain."""
    try:
        trainer = Trainer.resume(run_dir, library, progress=progress)
    except CheckpointError:
        return Trainer(cfg, library, run_dir, progress=progress)
    if trainer.cfg.to_dict() != cfg.to_dict():
        return Trainer(cfg, library, run_dir, progress=progress)
    return trainer


def run_report(library: PBLibrary, out: Path, plan: ReportPlan, log: Callable[[str], None] = print,
               progress: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12345)  # bootstrap resampling only
    base_cfg: TrainConfig = load_config(plan.config)
    scenario = scenario_of(base_cfg)
    started = time.perf_counter()
    results: dict = {"plan": asdict(plan), "library": library.sharing(), "scenario": scenario.to_dict(),
                     "train_config": base_cfg.to_dict()}

    # 1. train every learner variant on every training seed
    checkpoints: dict[str, list[Path]] = {}
    curves: dict[str, list[list[dict]]] = {}
    train_time: dict[str, list[float]] = {}
    for name in plan.variants:
        for seed in plan.train_seeds:
            cfg = TrainConfig.from_dict(base_cfg.to_dict() | VARIANTS[name] | {"seed": seed})
            run_dir = out / "runs" / f"{name}-seed{seed}"
            trainer = _trainer_for(cfg, library, run_dir, progress)
            history = trainer.run()
            train_time.setdefault(name, []).append(trainer.wall)  # training only, kept across resumes
            checkpoints.setdefault(name, []).append(run_dir)
            curves.setdefault(name, []).append(history)
            log(f"trained {name} seed {seed}: eval delay {history[-1]['eval_delay_s']:.3f} s "
                f"in {train_time[name][-1]:.0f} s")
    results["train_seconds"] = train_time
    results["curves"] = curves

    # 2. every policy on the same held-out seeds (learned: averaged over training seeds)
    def learned(name: str, lib: PBLibrary, sc) -> np.ndarray:
        per_run = [evaluate(lambda: load_policy(ck, name), lib, sc, plan.eval_seeds, plan.eval_slots)
                   for ck in checkpoints[name]]
        return np.mean(per_run, axis=0)

    def heuristic(name: str, lib: PBLibrary, sc) -> np.ndarray:
        return evaluate(lambda: make_policy(name), lib, sc, plan.eval_seeds, plan.eval_slots)

    policies: dict[str, dict] = {}
    for name in HEURISTICS:
        policies[name] = _summary(heuristic(name, library, scenario), rng)
    for name in plan.variants:
        policies[name] = _summary(learned(name, library, scenario), rng)
    results["policies"] = policies
    log("policies: " + ", ".join(f"{k} {v['mean_delay_s']:.3f}" for k, v in policies.items()))

    # 3. mean delay against cache capacity (learners trained at the default capacity)
    sweep: dict[str, dict[str, dict]] = {}
    capacities, note = feasible_capacities(plan.capacities, library)
    if note:
        results["capacity_sweep_note"] = note
        log(note)
    for frac in capacities:
        sc = scenario.replace(cache_fraction=frac)
        row = {name: _summary(heuristic(name, library, sc), rng) for name in HEURISTICS}
        row["maasn-da"] = _summary(learned("maasn-da", library, sc), rng)
        sweep[str(frac)] = row
    results["capacity_sweep"] = sweep

    # 4. gap to the exact optimum of the delay proxy on a small instance
    small = small_library()
    small_sc = scenario.replace(n_users=8)
    gap = {name: _summary(evaluate(lambda: make_policy(name), small, small_sc, plan.optimum_seeds,
                                   plan.eval_slots), rng) for name in ("optimal", "greedy", "lfu", "random")}
    # The learner is trained on the small instance itself (a policy trained on another library
    # would measure transfer, not the gap to the optimum).
    small_cfg = TrainConfig.from_dict(base_cfg.to_dict() | VARIANTS["maasn-da"] | {
        "seed": plan.train_seeds[0], "scenario": dict(base_cfg.scenario) | {"n_users": small_sc.n_users}})
    small_run = out / "runs" / f"small-maasn-da-seed{plan.train_seeds[0]}"
    _trainer_for(small_cfg, small, small_run, progress).run()
    gap["maasn-da"] = _summary(evaluate(lambda: load_policy(small_run, "maasn-da"), small, small_sc,
                                        plan.optimum_seeds, plan.eval_slots), rng)
    results["small_instance"] = {"library": small.sharing(), "policies": gap}

    # 5. robust against non-robust beamforming across CSI error bounds (greedy placement)
    robust: dict[str, dict] = {}
    t_rob = time.perf_counter()
    rob_sc = scenario.replace(n_users=plan.robust_users)
    complete = True
    for eps in plan.csi_errors:
        cell = {}
        for bf in ("sdr", "robust"):
            vals = []
            for s in plan.eval_seeds:
                if time.perf_counter() - t_rob > plan.robust_budget_s:
                    complete = False
                    break
                vals.append(evaluate(lambda: make_policy("greedy"), small, rob_sc.replace(beamformer=bf, csi_error=eps),
                                     (s,), plan.robust_slots)[0])
            if vals:
                cell[bf] = _summary(np.array(vals), rng)
        if "sdr" in cell and "robust" in cell and len(cell["sdr"]["per_seed"]) == len(cell["robust"]["per_seed"]):
            cell["reduction_pct"] = _reduction(cell["sdr"]["mean_delay_s"], cell["robust"]["mean_delay_s"])
        robust[str(eps)] = cell
    results["robust_sweep"] = {"complete": complete, "budget_s": plan.robust_budget_s, "cells": robust}

    # 6. the targets, computed from the above
    best_heur = min(HEURISTICS, key=lambda k: policies[k]["mean_delay_s"])
    da_steps = [steps_to_fraction(c) for c in curves.get("maasn-da", [])]
    noda_steps = [steps_to_fraction(c) for c in curves.get("maasn-noda", [])]
    results["targets"] = {
        "maasn_da_vs_greedy_pct": _reduction(policies["greedy"]["mean_delay_s"], policies["maasn-da"]["mean_delay_s"]),
        "best_heuristic": best_heur,
        "maasn_da_vs_best_heuristic_pct": _reduction(policies[best_heur]["mean_delay_s"],
                                                     policies["maasn-da"]["mean_delay_s"]),
        "fine_vs_coarse_pct": {k: _reduction(policies["coarse"]["mean_delay_s"], policies[k]["mean_delay_s"])
                               for k in ("maasn-da", "greedy", "lfu")},
        "paper_fine_vs_coarse_pct": 67.86,
        "robust_vs_nonrobust_pct": {k: v.get("reduction_pct") for k, v in robust.items()},
        "paper_robust_vs_nonrobust_pct": 31.09,
        "steps_to_90pct_da": da_steps,
        "steps_to_90pct_noda": noda_steps,
        "da_step_ratio": (float(np.mean([s for s in da_steps if s])) / float(np.mean([s for s in noda_steps if s]))
                          if any(da_steps) and any(noda_steps) else None),
        "optimality_gap_pct": {k: -_reduction(gap["optimal"]["mean_delay_s"], gap[k]["mean_delay_s"])
                               for k in ("maasn-da", "greedy")},
    }
    results["wall_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out)
    return results


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, style in (("maasn-da", "-"), ("maasn-noda", "--")):
        runs = results["curves"].get(name, [])
        if not runs:
            continue
        steps = [r["step"] for r in runs[0]]
        delay = np.mean([[r["eval_delay_s"] for r in run] for run in runs], axis=0)
        ax.plot(steps, delay, style, marker="o", ms=3, label=name)
    ax.set_xlabel("real environment steps (slots)")
    ax.set_ylabel("eval mean delay (s)")
    ax.set_title("learning curves, with and without DA")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sweep = results["capacity_sweep"]
    fracs = sorted(sweep, key=float)
    for name in sweep[fracs[0]]:
        ax.plot([float(f) for f in fracs], [sweep[f][name]["mean_delay_s"] for f in fracs], marker="o", ms=3,
                label=name)
    ax.set_xlabel("cache capacity (fraction of unique library bytes)")
    ax.set_ylabel("mean delay (s)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "delay_vs_capacity.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    cells = results["robust_sweep"]["cells"]
    eps = sorted((e for e in cells if cells[e]), key=float)
    for bf in ("sdr", "robust"):
        xs = [float(e) for e in eps if bf in cells[e]]
        ys = [cells[e][bf]["mean_delay_s"] for e in eps if bf in cells[e]]
        ax.plot(xs, ys, marker="o", label="non-robust (SDR)" if bf == "sdr" else "robust (S-procedure)")
    ax.set_xlabel("CSI error bound eps")
    ax.set_ylabel("mean delay (s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "robust_vs_nonrobust.png", dpi=120)
    plt.close(fig)
