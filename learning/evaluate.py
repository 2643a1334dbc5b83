"""Evaluation of learned and heuristic policies on the one harness, `delivery.experiment.run_policy`:
scenario seed s gives the same users, channels and requests as `pbkit sim run --seed s`, for
every policy, so per-seed differences between policies are paired.

Statistics: per policy the mean over seeds with a 95 % Student-t interval; per learner the
paired per-seed difference to the best heuristic (the heuristic with the lowest mean on these
seeds) with its 95 % t-interval, and the ratio of the means.

Evaluation cells (`evaluate_cells`): every (policy, seed) run is a cell of the experiment
engine (`delivery.engine`), so `learn report` runs them on Ray with `--workers N` /
`--address` and a rerun skips every run already recorded in the report's directory. A cell
names its policy by a spec that is plain data: a heuristic by name, an oracle or bound of
`delivery.references`, or a checkpoint directory with the digest of its policy weights (a
retrained checkpoint is a new cell). On a cluster the checkpoint paths must be readable by the
workers (a shared file system).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import compare, paired_difference, run_policy
from delivery.interval import Interval
from delivery.registry import role_of
from pbkit.library import PBLibrary

PolicyFactory = Callable[[], Any]


def run_seed(
    config: ScenarioConfig, library: PBLibrary, name: str, factory: PolicyFactory | None, slots: int, seed: int
) -> dict[str, Any]:
    """One run's summary (`RunResult.summary()`): a heuristic by name (factory None) or a fresh
    policy object from `factory`. Raises delivery's ConfigError/CapacityError."""
    return run_policy(config, library, name if factory is None else factory(), slots, seed).summary()


def evaluate_policies(
    config: ScenarioConfig,
    library: PBLibrary,
    policies: dict[str, PolicyFactory | None],
    seeds: list[int] | tuple[int, ...],
    slots: int,
    on_run: Callable[[str, int, float], None] | None = None,
) -> dict[str, np.ndarray]:
    """Per-seed mean delay (s) of every policy on every seed, through `delivery.experiment.compare`
    (factory None: the registered policy of that name)."""
    report = (lambda run: on_run(run.policy, run.seed, run.mean("mean_delay_s"))) if on_run else None
    result = compare(config, library, dict(policies), [int(s) for s in seeds], slots, on_run=report)
    return {name: np.array(row["per_seed_mean_delay_s"]) for name, row in result["policies"].items()}


def summarise(
    values: dict[str, np.ndarray], heuristics: list[str] | tuple[str, ...], learners: list[str] | tuple[str, ...]
) -> dict[str, Any]:
    """Per policy `mean_delay_s` (a number), its 95 % t-`interval` (`Interval.to_json()`) and
    `per_seed`; each learner's paired difference to the best heuristic (the lowest mean among
    `heuristics`, references and bounds of the registry left out)
    (`delivery.experiment.paired_difference`: an interval of the per-seed differences, `vs`,
    `ratio`, `per_seed_diff`)."""
    policies = {}
    for name, v in values.items():
        interval = Interval.from_samples(v)
        policies[name] = {
            "mean_delay_s": interval.mean,
            "interval": interval.to_json(),
            "per_seed": [float(x) for x in v],
        }
    # references and bounds read the future: never "the best heuristic" a learner is judged by
    present = [h for h in heuristics if h in values and role_of(h) not in ("reference", "bound")]
    out: dict[str, Any] = {"policies": policies}
    if not present:
        return out
    best = min(present, key=lambda h: float(np.mean(values[h])))
    out["best_heuristic"] = best
    out["paired"] = {
        name: {"vs": best, **paired_difference(values[name], values[best])} for name in learners if name in values
    }
    return out


# ---------------------------------------------------------------------------- cells on the engine
def heuristic(name: str) -> dict[str, Any]:
    """Spec of a registered `delivery.policies` policy."""
    return {"kind": "heuristic", "policy": name}


def reference(name: str) -> dict[str, Any]:
    """Spec of a reference or bound of the policy registry (`delivery.references`: ORACLES, BOUNDS)."""
    return {"kind": "reference", "policy": name}


def checkpoint(run_dir: str | Path, name: str) -> dict[str, Any]:
    """Spec of a run directory's best policy; raises CheckpointError when it has none."""
    from learning.checkpoint import POLICY, run_files
    from learning.errors import CheckpointError

    weights, _ = run_files(run_dir, POLICY)
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    except OSError:
        raise CheckpointError(f"{weights}: no policy checkpoint here") from None
    return {"kind": "checkpoint", "policy": name, "run_dir": str(Path(run_dir).resolve()), "weights": digest}


def eval_task(params: dict[str, Any], library: PBLibrary) -> dict[str, Any]:
    """One evaluation cell: `run_policy` of the spec's policy on the cell's scenario and seed."""
    from learning.policy import load_policy

    config = ScenarioConfig.from_dict(params["config"], where="cell config")
    kind, name, seed = params["kind"], params["policy"], int(params["seed"])
    policy: Any
    if kind in ("heuristic", "reference"):  # both by name from the registry (cell keys keep the kind)
        policy = name
    elif kind == "checkpoint":
        policy = load_policy(params["run_dir"], name)
    else:
        raise ValueError(f"evaluation cell: unknown policy spec {kind}/{name}")
    return run_seed(
        config, library, name, (lambda: policy) if not isinstance(policy, str) else None, int(params["slots"]), seed
    )


def evaluate_cells(
    config: ScenarioConfig,
    library: PBLibrary,
    specs: dict[str, dict[str, Any]],
    seeds: list[int] | tuple[int, ...],
    slots: int,
    out_dir: str | Path,
    workers: int | None = None,
    address: str | None = None,
    label: str = "evaluate",
    on_run: Callable[[str, int, float], None] | None = None,
) -> dict[str, np.ndarray]:
    """Per-seed mean delay of every named spec on every seed, as cells recorded in `out_dir`
    (finished cells are reused). In this process one by one unless `workers` or `address` is
    given (then on Ray). Raises EngineError when a run fails (delivery's errors inside)."""
    from delivery.engine import Cell, params_key, run_cells
    from delivery.sweep import library_digest

    digest = library_digest(library)
    cfg = config.to_dict()
    cells = []
    for name, spec in specs.items():
        for s in seeds:
            params = {**spec, "name": name, "seed": int(s), "slots": int(slots), "config": cfg, "library": digest}
            # a checkpoint is keyed by its weights, not where it lies (a moved report keeps its cells)
            cells.append(Cell(params, params_key({k: v for k, v in params.items() if k != "run_dir"})))
    seen: set[str] = set()

    def write(results) -> None:  # report each run once, as it finishes (or is found recorded)
        if on_run is None:
            return
        for r in results:
            if r.cell.key not in seen:
                seen.add(r.cell.key)
                on_run(r.cell.params["name"], r.cell.params["seed"], r.result["mean_delay_s"])

    inline = workers is None and address is None
    report = run_cells(
        cells,
        eval_task,
        out_dir,
        shared=library,
        workers=workers,
        address=address,
        write=write,
        label=label,
        executor="inline" if inline else "ray",
    )
    by_key = {r.cell.key: r.result["mean_delay_s"] for r in report.results}
    return {name: np.array([by_key[c.key] for c in cells if c.params["name"] == name]) for name in specs}
