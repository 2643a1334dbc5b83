"""The evaluation protocol behind `pbkit learn report`: train MAASN-DA and its ablations on
several training seeds, run every learner and every delivery heuristic on the same held-out
seeded scenarios through the one harness (`learning.evaluate`, i.e. `delivery.experiment`),
and write results.json (per-seed rows, means with 95 % t-intervals, paired differences to the
best heuristic) plus plots.

Training validates on seeds 1000+ (`TrainConfig.val_seeds`); evaluation uses 2000+, so the
best-checkpoint choice never sees a test scenario. Learners train on the training config's
scenario and are evaluated on the evaluation scenario (default: the default scenario).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from delivery.config import ScenarioConfig
from delivery.interval import Interval
from delivery.references import BOUNDS, ORACLES
from learning.config import TEST_SEEDS, VARIANTS, LearnConfigError, ScenarioSettings, TrainConfig, load_config
from learning.errors import CheckpointError
from learning.evaluate import checkpoint, evaluate_cells, heuristic, reference, summarise
from learning.trainer import Trainer
from pbkit.common.schema import SCHEMA_KEY, schema_id
from pbkit.library import PBLibrary, synthetic_library

REFERENCES = ("oracle", "search", "fullcache")  # the policy registry's references


class ReportPlanError(LearnConfigError):
    """A report plan file or `--set` override is malformed."""


@dataclass(frozen=True)
class ReportPlan(ScenarioSettings):
    """What `pbkit learn report` runs: a settings type of the one loader (pbkit.common.settings).

    Bundled plans (`bundled_report_plans()`, learning/plans/report/): `quick` (a smoke run of the
    whole protocol in about 3 minutes on the demo zoo library: no headroom references, 2 slots
    per seed) and `full` (the protocol of docs/learning.md §6; the defaults below). Seed fields
    take the --seeds grammar (`0-4`) as well as lists; tuple fields take `a,b,c`.
    """

    SETTINGS_ERROR = ReportPlanError  # not fields: no annotation
    SETTINGS_KIND = "report plan"
    BUNDLED_DIR = Path(__file__).parent / "plans" / "report"  # quick, full

    train_config: str = "full"  # training config: bundled name (learning/configs/) or file
    train_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    # MAASN-DA and the ablations of issue 16 on the same seeds: no DA, no neighbour messages, no
    # attention, mean critic
    variants: tuple[str, ...] = ("maasn-da", "maasn-noda", "maasn-nomsg", "maasn-noattn", "maasn-meancritic")
    eval_seeds: tuple[int, ...] = TEST_SEEDS
    eval_slots: int = 20
    capacities: tuple[float, ...] = (0.15, 0.3, 0.5)  # cache fractions of the sweep (empty: none)
    csi_errors: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)  # CSI error bounds of the robust sweep
    robust_users: int = 4
    robust_slots: int = 1
    robust_budget_s: float = 300.0  # stop the (solver-bound) robust sweep after this long
    optimum_seeds: tuple[int, ...] = (2000, 2001, 2002, 2003, 2004)  # small-instance optimum (empty: none)
    # evaluation scenario: overrides of the default ScenarioConfig (`--scenario` layers a scenario
    # file's keys over them, `--set scenario.k=v` one key)
    scenario: dict[str, Any] = field(default_factory=dict)
    # every heuristic of the registry but the MILP optimum (minutes per slot at full scale)
    heuristics: tuple[str, ...] = (
        "random",
        "popular",
        "lfu",
        "lru",
        "greedy",
        "greedy-ema",
        "greedy-forecast",
        "coarse",
        "noncoop",
    )
    evaluated: tuple[str, ...] | None = None  # variants run on the test seeds (None: all trained)
    headroom: bool = True  # also run the oracles and the bound of delivery.references on the test seeds
    # references of the policy registry (not heuristics: they read the future or bound the delay),
    # run on the test seeds and compared like the learners
    references: tuple[str, ...] = REFERENCES

    def __post_init__(self) -> None:
        from delivery.errors import ConfigError
        from delivery.policies import make_policy

        if not self.train_seeds or not self.variants or not self.eval_seeds:
            empty = next(k for k in ("train_seeds", "variants", "eval_seeds") if not getattr(self, k))
            raise ReportPlanError(f"{empty} is empty")
        for name in ("train_seeds", "eval_seeds", "optimum_seeds"):
            if any(s < 0 for s in getattr(self, name)):
                raise ReportPlanError(f"{name} = {min(getattr(self, name))}: seeds are non-negative integers")
        for name in ("eval_slots", "robust_users", "robust_slots"):
            if getattr(self, name) < 1:
                raise ReportPlanError(f"{name} = {getattr(self, name)} must be at least 1")
        unknown = [v for v in (*self.variants, *(self.evaluated or ())) if v not in VARIANTS]
        if unknown:
            raise ReportPlanError(f"variants: unknown {unknown[0]!r} (have: {', '.join(VARIANTS)})")
        try:
            for policy in (*self.heuristics, *self.references):
                make_policy(policy)  # a bad name fails before training
            ScenarioConfig.from_dict(self.scenario, where="scenario")
        except ConfigError as exc:
            raise ReportPlanError(str(exc)) from None


def bundled_report_plans() -> dict[str, Path]:
    """The report plans shipped as package data, by name (quick, full)."""
    return ReportPlan.bundled()


def small_library() -> PBLibrary:
    """A library small enough for the exact (MILP) optimum and the SDP beamformers."""
    return synthetic_library(np.random.default_rng(7), families=1, models_per_family=3, base_pbs=4, own_pbs=1)


def _reduction(base: float, new: float) -> float:
    return 100.0 * (base - new) / base if base > 0 else float("nan")


def steps_to_fraction(curve: list[dict], fraction: float = 0.9) -> int | None:
    """First real step where the validation delay has covered `fraction` of its first-to-best
    reduction (None when it never improved on the first validation)."""
    delays = np.array([r["eval_delay_s"] for r in curve])
    steps = [r["step"] for r in curve]
    gain = delays[0] - delays.min()
    if gain <= 0:
        return None
    for s, d in zip(steps, delays):
        if delays[0] - d >= fraction * gain:
            return int(s)
    return int(steps[-1])


FORECAST_KEYS = (
    "forecast_skill",
    "forecast_mse",
    "ema_mse",
    "cumulative_mse",
    "forecast_skill_true",
    "forecast_mse_true",
    "ema_mse_true",
    "cumulative_mse_true",
    "synthetic_share",
)


def forecast_summary(runs: dict[int, Any]) -> dict[str, Any]:
    """The ESN's forecast errors at the end of each DA run (last validation row), per seed and
    mean: against realised request shares and against the true popularity (see
    learning.augmentation), beside the moving-average and cumulative-count baselines."""
    last = {
        seed: {k: r.history[-1].get(k, float("nan")) for k in FORECAST_KEYS} for seed, r in runs.items() if r.history
    }
    if not last:
        return {}
    mean = {
        k: float(np.nanmean([row[k] for row in last.values()]))
        if any(np.isfinite(row[k]) for row in last.values())
        else float("nan")
        for k in FORECAST_KEYS
    }
    return {"per_seed": {str(k): v for k, v in last.items()}, "mean": mean}


def feasible_capacities(fractions: tuple[float, ...], library: PBLibrary) -> tuple[list[float], str]:
    """The sweep's cache fractions, each raised to the smallest that holds the largest PB.

    A real library can have one PB (say a layer-grouped embedding) larger than 10 % of the unique
    bytes; the simulator rightly refuses such a capacity, so the sweep moves that point up and
    says so instead of failing after the training runs."""
    unique = library.sharing()["unique_bytes"]
    smallest = float(np.ceil(100.0 * library.pb_sizes().max() / unique) / 100.0)
    chosen = sorted({max(float(f), smallest) for f in fractions})
    raised = [f for f in fractions if f < smallest]
    note = (
        (
            f"capacity fractions {raised} are below the largest PB "
            f"({int(library.pb_sizes().max())} bytes); swept from {smallest} instead"
        )
        if raised
        else ""
    )
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


def train_task(params: dict[str, Any], library: PBLibrary) -> dict[str, Any]:
    """One training cell: train (or finish, or reuse) the run in params["run_dir"]; its summary."""
    cfg = TrainConfig.from_dict(params["config"], where=params["run_dir"])
    trainer = _trainer_for(cfg, library, Path(params["run_dir"]), bool(params.get("progress", False)))
    trainer.run()
    return {"best": trainer.best, "wall": trainer.wall, "history": trainer.history}


@dataclass(frozen=True)
class Run:
    """A finished training run: its directory and what `train_task` returned."""

    variant: str
    seed: int
    run_dir: Path
    best: float
    wall: float
    history: list[dict]


def train_runs(
    library: PBLibrary,
    out: Path,
    base: TrainConfig,
    variants: tuple[str, ...],
    seeds: tuple[int, ...],
    log: Callable[[str], None],
    progress: bool,
    prefix: str = "",
    workers: int | None = None,
    address: str | None = None,
) -> dict[str, dict[int, Run]]:
    """Every variant on every training seed, as cells of the engine (in this process unless
    `workers`/`address`; finished runs are reused, interrupted ones resumed from their checkpoint)."""
    from delivery.engine import Cell, params_key, run_cells
    from delivery.sweep import library_digest

    digest = library_digest(library)
    cells, where = [], {}
    for name in variants:
        for seed in seeds:
            cfg = TrainConfig.from_dict(base.to_dict() | VARIANTS[name] | {"seed": seed})
            run_dir = (out / "runs" / f"{prefix}{name}-seed{seed}").resolve()
            params = {"variant": name, "config": cfg.to_dict(), "library": digest, "run_dir": str(run_dir)}
            inline = workers is None and address is None
            key = params_key(params)
            cells.append(Cell(params | {"progress": progress and inline}, key))
            where[key] = (name, seed, run_dir)
    done: set[str] = set()

    def write(results) -> None:
        for r in results:
            if r.cell.key not in done:
                done.add(r.cell.key)
                name, seed, _ = where[r.cell.key]
                log(
                    f"trained {prefix}{name} seed {seed}: best validation delay {r.result['best']:.3f} s "
                    f"in {r.result['wall']:.0f} s"
                )

    report = run_cells(
        cells,
        train_task,
        out / "training",
        shared=library,
        workers=workers,
        address=address,
        write=write,
        label="train",
        executor="inline" if workers is None and address is None else "ray",
    )
    runs: dict[str, dict[int, Run]] = {}
    for r in report.results:
        name, seed, run_dir = where[r.cell.key]
        runs.setdefault(name, {})[seed] = Run(
            name, seed, run_dir, r.result["best"], r.result["wall"], r.result["history"]
        )
    return runs


def _learner_specs(runs: dict[str, dict[int, Run]]) -> dict[str, dict[str, Any]]:
    return {
        f"{name}/seed{seed}": checkpoint(r.run_dir, name)
        for name, by_seed in runs.items()
        for seed, r in by_seed.items()
    }


def _with_pooled(values: dict[str, np.ndarray], runs: dict[str, dict[int, Run]]) -> dict[str, np.ndarray]:
    """Add each variant's mean over its training seeds (per evaluation seed)."""
    pooled = {name: np.mean([values[f"{name}/seed{s}"] for s in by_seed], axis=0) for name, by_seed in runs.items()}
    return values | pooled


def run_report(
    library: PBLibrary,
    out: Path,
    plan: ReportPlan,
    log: Callable[[str], None] = print,
    progress: bool = True,
    workers: int | None = None,
    address: str | None = None,
) -> dict:
    """The protocol of the module docstring; every training run and every evaluation run is a cell
    of the experiment engine recorded under `out` (training/, evaluation/), so a rerun reuses
    them and `workers`/`address` run them on Ray. Raises EngineError, LearnConfigError,
    CheckpointError, delivery's ConfigError/CapacityError."""
    out.mkdir(parents=True, exist_ok=True)
    base_cfg: TrainConfig = load_config(plan.train_config)
    scenario = ScenarioConfig.from_dict(plan.scenario, where="report scenario")
    started = time.perf_counter()
    results: dict = {
        SCHEMA_KEY: schema_id("learn-report"),
        "plan": asdict(plan),
        "library": library.sharing(),
        "scenario": scenario.to_dict(),
        "train_config": base_cfg.to_dict(),
        "date": time.strftime("%Y-%m-%d"),
    }
    on_run = (lambda n, s, v: log(f"  {n} seed {s}: {v:.3f} s")) if progress else None
    engine = {"workers": workers, "address": address}

    def evaluate(sc: ScenarioConfig, lib: PBLibrary, specs: dict[str, dict], seeds, slots: int, label: str):
        return evaluate_cells(sc, lib, specs, seeds, slots, out / "evaluation", label=label, on_run=on_run, **engine)

    # 1. train every learner variant on every training seed
    runs = train_runs(library, out, base_cfg, plan.variants, plan.train_seeds, log, progress, **engine)
    results["train_seconds"] = {n: [t.wall for t in r.values()] for n, r in runs.items()}
    results["curves"] = {n: [t.history for t in r.values()] for n, r in runs.items()}
    results["best_validation_s"] = {n: [t.best for t in r.values()] for n, r in runs.items()}

    # 2. every policy on the same held-out seeds, with the headroom oracles and the full-cache bound
    tested = {n: r for n, r in runs.items() if plan.evaluated is None or n in plan.evaluated}
    specs = {h: heuristic(h) for h in (*plan.heuristics, *plan.references)} | _learner_specs(tested)
    if plan.headroom:
        specs |= {k: reference(k) for k in (*ORACLES, *BOUNDS)}
    values = _with_pooled(evaluate(scenario, library, specs, plan.eval_seeds, plan.eval_slots, "evaluate"), tested)
    learners = [n for n in values if n not in plan.heuristics]
    main = summarise(values, plan.heuristics, learners)
    results["eval_seeds"] = list(plan.eval_seeds)
    results["policies"] = main["policies"]
    results["best_heuristic"] = main["best_heuristic"]
    results["paired"] = main["paired"]
    log("policies: " + ", ".join(f"{k} {v['mean_delay_s']:.3f}" for k, v in main["policies"].items()))

    # 3. mean delay against cache capacity (learners trained at the default capacity, one seed)
    sweep: dict[str, dict] = {}
    capacities, note = feasible_capacities(plan.capacities, library)
    if note:
        results["capacity_sweep_note"] = note
        log(note)
    first = {"maasn-da": {plan.train_seeds[0]: runs["maasn-da"][plan.train_seeds[0]]}} if "maasn-da" in runs else {}
    for frac in capacities:
        sc = scenario.replace(cache_fraction=frac)
        vals = evaluate(
            sc,
            library,
            {h: heuristic(h) for h in plan.heuristics} | _learner_specs(first),
            plan.eval_seeds,
            plan.eval_slots,
            f"capacity {frac}",
        )
        sweep[str(frac)] = summarise(vals, plan.heuristics, [n for n in vals if n not in plan.heuristics])
    results["capacity_sweep"] = sweep

    # 4. gap to the exact optimum of the delay proxy on a small instance; the learner is trained
    # on the small instance itself (a policy trained elsewhere would measure transfer)
    if not plan.optimum_seeds:
        return _finish(results, out, plan, runs, main, None, {}, started)
    small = small_library()
    small_sc = scenario.replace(n_users=8)
    small_cfg = TrainConfig.from_dict(base_cfg.to_dict() | {"scenario": dict(base_cfg.scenario) | {"n_users": 8}})
    small_runs = train_runs(
        small, out, small_cfg, ("maasn-da",), plan.train_seeds[:1], log, progress, "small-", **engine
    )
    vals = _with_pooled(
        evaluate(
            small_sc,
            small,
            {p: heuristic(p) for p in ("optimal", "greedy", "lfu", "random")} | _learner_specs(small_runs),
            plan.optimum_seeds,
            plan.eval_slots,
            "small instance",
        ),
        small_runs,
    )
    gap = summarise(vals, ("greedy", "lfu", "random"), ["maasn-da", "optimal"])
    results["small_instance"] = {"library": small.sharing(), "scenario": small_sc.to_dict(), **gap}

    # 5. robust against non-robust beamforming across CSI error bounds (greedy placement)
    robust: dict[str, dict] = {}
    t_rob = time.perf_counter()
    rob_sc = scenario.replace(n_users=plan.robust_users)
    complete = True
    for eps in plan.csi_errors:
        cell = {}
        for bf in ("sdr", "robust"):
            vals_bf = []
            for s in plan.eval_seeds:
                if time.perf_counter() - t_rob > plan.robust_budget_s:
                    complete = False
                    break
                vals_bf.append(
                    evaluate(
                        rob_sc.replace(beamformer=bf, csi_error=eps),
                        small,
                        {"greedy": heuristic("greedy")},
                        [s],
                        plan.robust_slots,
                        f"robust sweep eps {eps}",
                    )["greedy"][0]
                )
            if vals_bf:
                cell[bf] = summarise({bf: np.array(vals_bf)}, (), ())["policies"][bf]
        if "sdr" in cell and "robust" in cell and len(cell["sdr"]["per_seed"]) == len(cell["robust"]["per_seed"]):
            cell["reduction_pct"] = _reduction(cell["sdr"]["mean_delay_s"], cell["robust"]["mean_delay_s"])
        robust[str(eps)] = cell
    results["robust_sweep"] = {"complete": complete, "budget_s": plan.robust_budget_s, "cells": robust}

    return _finish(results, out, plan, runs, main, gap, robust, started)


def _finish(
    results: dict,
    out: Path,
    plan: ReportPlan,
    runs: dict[str, dict[int, Run]],
    main: dict,
    gap: dict | None,
    robust: dict,
    started: float,
) -> dict:
    """The issue's targets, computed from the measurements; results.json and the plots."""
    from pbkit.common.fs import atomic_write_text

    policies, paired, best = main["policies"], main["paired"], main["best_heuristic"]
    targets: dict[str, Any] = {"best_heuristic": best}
    for variant in plan.variants:
        if variant not in paired:
            continue
        key = variant.replace("-", "_")
        pooled = paired[variant]
        targets[f"{key}_ratio_to_best_heuristic"] = pooled["ratio"]
        targets[f"{key}_paired_diff_s"] = Interval.from_json(pooled).to_json()
        targets[f"{key}_per_training_seed"] = {
            k.split("/", 1)[1]: {"ratio": v["ratio"], **Interval.from_json(v).to_json()}
            for k, v in paired.items()
            if k.startswith(variant + "/")
        }
    if "maasn-da" in paired:
        da = paired["maasn-da"]
        targets["ratio_at_most_0.95_and_ci_below_zero"] = bool(da["ratio"] <= 0.95 and Interval.from_json(da).hi < 0)
        per_seed = targets["maasn_da_per_training_seed"]
        targets["no_training_seed_worse_than_best_heuristic"] = bool(all(v["mean"] <= 0 for v in per_seed.values()))
        if "coarse" in policies:
            targets["fine_vs_coarse_pct"] = {
                k: _reduction(policies["coarse"]["mean_delay_s"], policies[k]["mean_delay_s"])
                for k in ("maasn-da", "greedy", "lfu")
                if k in policies
            }
    if gap is not None:
        opt = gap["policies"]["optimal"]["mean_delay_s"]
        targets["optimality_gap_pct"] = {
            k: -_reduction(opt, gap["policies"][k]["mean_delay_s"]) for k in ("maasn-da", "greedy", "lfu")
        }
    # the share of the gap between the best heuristic and the oracle that each learner closes
    if "oracle" in policies:
        best_d, oracle_d = policies[best]["mean_delay_s"], policies["oracle"]["mean_delay_s"]
        targets["oracle_gap_closed"] = {
            name: (best_d - policies[name]["mean_delay_s"]) / (best_d - oracle_d) if best_d > oracle_d else None
            for name in plan.variants
            if name in policies
        }
    # headroom: what better demand knowledge (oracles) or unlimited cache (bound) gives over the best heuristic
    for kind in (*ORACLES, *BOUNDS):
        if kind in paired:
            targets[f"{kind}_ratio_to_best_heuristic"] = paired[kind]["ratio"]
            targets[f"{kind}_paired_diff_s"] = Interval.from_json(paired[kind]).to_json()
    da_steps = [steps_to_fraction(t.history) for t in runs.get("maasn-da", {}).values()]
    noda_steps = [steps_to_fraction(t.history) for t in runs.get("maasn-noda", {}).values()]
    targets["steps_to_90pct_da"] = da_steps
    targets["steps_to_90pct_noda"] = noda_steps
    targets["da_step_ratio"] = (
        float(np.mean([s for s in da_steps if s])) / float(np.mean([s for s in noda_steps if s]))
        if any(da_steps) and any(noda_steps)
        else None
    )
    targets["forecast"] = forecast_summary(runs.get("maasn-da", {}))
    targets["robust_vs_nonrobust_pct"] = {k: v.get("reduction_pct") for k, v in robust.items()}
    results["targets"] = targets
    results["wall_seconds"] = time.perf_counter() - started
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    plot(results, out)
    return results


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, runs in results["curves"].items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        length = min(len(run) for run in runs)
        steps = [r["step"] for r in runs[0][:length]]
        delays = np.array([[r["eval_delay_s"] for r in run[:length]] for run in runs])
        mean = delays.mean(axis=0)
        (line,) = ax.plot(steps, mean, "-" if name == "maasn-da" else "--", marker="o", ms=3, label=name)
        if len(runs) > 1:  # band: 95 % t-interval of the mean over training seeds
            half = np.array([Interval.from_samples(delays[:, i]).half_width for i in range(length)])
            ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("real environment steps (slots)")
    ax.set_ylabel("validation mean delay (s)")
    ax.set_title("learning curves (mean, 95 % band over training seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)

    sweep = results.get("capacity_sweep", {})
    if not sweep:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    fracs = sorted(sweep, key=float)
    for name in sweep[fracs[0]]["policies"]:
        ax.plot(
            [float(f) for f in fracs],
            [sweep[f]["policies"][name]["mean_delay_s"] for f in fracs],
            marker="o",
            ms=3,
            label=name,
        )
    ax.set_xlabel("cache capacity (fraction of unique library bytes)")
    ax.set_ylabel("mean delay (s)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "delay_vs_capacity.png", dpi=120)
    plt.close(fig)

    cells = results.get("robust_sweep", {}).get("cells", {})
    if not any(cells.values()):
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
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
