"""Evaluation of learned and heuristic policies on the one harness, `delivery.experiment.run_policy`:
scenario seed s gives the same users, channels and requests as `pbkit sim run --seed s`, for
every policy, so per-seed differences between policies are paired.

Statistics: per policy the mean over seeds with a 95 % Student-t interval; per learner the
paired per-seed difference to the best heuristic (the heuristic with the lowest mean on these
seeds) with its 95 % t-interval, and the ratio of the means.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import compare, paired_difference, run_policy, t_interval
from pbkit.library import PBLibrary

PolicyFactory = Callable[[], Any]


def run_seed(config: ScenarioConfig, library: PBLibrary, name: str, factory: PolicyFactory | None,
             slots: int, seed: int) -> dict[str, Any]:
    """One run's summary (`RunResult.summary()`): a heuristic by name (factory None) or a fresh
    policy object from `factory`. Raises delivery's ConfigError/CapacityError."""
    return run_policy(config, library, name if factory is None else factory(), slots, seed).summary()


def evaluate_policies(config: ScenarioConfig, library: PBLibrary, policies: dict[str, PolicyFactory | None],
                      seeds: list[int] | tuple[int, ...], slots: int,
                      on_run: Callable[[str, int, float], None] | None = None) -> dict[str, np.ndarray]:
    """Per-seed mean delay (s) of every policy on every seed, through `delivery.experiment.compare`
    (factory None: the registered policy of that name)."""
    report = (lambda run: on_run(run.policy, run.seed, run.mean("mean_delay_s"))) if on_run else None
    result = compare(config, library, dict(policies), [int(s) for s in seeds], slots, on_run=report)
    return {name: np.array(row["per_seed_mean_delay_s"]) for name, row in result["policies"].items()}


def summarise(values: dict[str, np.ndarray], heuristics: list[str] | tuple[str, ...],
              learners: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Means with 95 % t-intervals, and each learner's paired difference to the best heuristic
    (`delivery.experiment.paired_difference`)."""
    policies = {}
    for name, v in values.items():
        mean, half = t_interval(list(v))
        policies[name] = {"mean_delay_s": mean, "ci95": [mean - half, mean + half],
                          "per_seed": [float(x) for x in v]}
    present = [h for h in heuristics if h in values]
    out: dict[str, Any] = {"policies": policies}
    if not present:
        return out
    best = min(present, key=lambda h: float(np.mean(values[h])))
    out["best_heuristic"] = best
    out["paired"] = {name: {"vs": best, **paired_difference(values[name], values[best])}
                     for name in learners if name in values}
    return out
