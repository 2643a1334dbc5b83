"""Evaluation of learned and heuristic policies on the one harness, `delivery.experiment.run_policy`:
scenario seed s gives the same users, channels and requests as `pbkit sim run --seed s`, for
every policy, so per-seed differences between policies are paired.

Statistics: per policy the mean over seeds with a 95 % Student-t interval; per learner the
paired per-seed difference to the best heuristic (the heuristic with the lowest mean on these
seeds) with its 95 % t-interval, and the ratio of the means.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import run_policy, t_interval
from pbkit.library import PBLibrary

PolicyFactory = Callable[[], Any]


def _harness_takes_objects() -> bool:
    return "policy_name" not in inspect.signature(run_policy).parameters


def run_seed(config: ScenarioConfig, library: PBLibrary, name: str, factory: PolicyFactory | None,
             slots: int, seed: int) -> dict[str, Any]:
    """One run's summary (`RunResult.summary()`): a heuristic by name (factory None) or a fresh
    policy object from `factory`. Raises delivery's ConfigError/CapacityError."""
    if factory is None:
        return run_policy(config, library, name, slots, seed).summary()
    if _harness_takes_objects():
        return run_policy(config, library, factory(), slots, seed).summary()
    from delivery.policies import register_policy  # older harness: names only

    register_policy(name, lambda **_: factory())
    return run_policy(config, library, name, slots, seed).summary()


def evaluate_policies(config: ScenarioConfig, library: PBLibrary, policies: dict[str, PolicyFactory | None],
                      seeds: list[int] | tuple[int, ...], slots: int,
                      on_run: Callable[[str, int, float], None] | None = None) -> dict[str, np.ndarray]:
    """Per-seed mean delay (s) of every policy on every seed."""
    out: dict[str, list[float]] = {name: [] for name in policies}
    for seed in seeds:
        for name, factory in policies.items():
            value = float(run_seed(config, library, name, factory, slots, int(seed))["mean_delay_s"])
            out[name].append(value)
            if on_run is not None:
                on_run(name, int(seed), value)
    return {name: np.array(v) for name, v in out.items()}


def summarise(values: dict[str, np.ndarray], heuristics: list[str] | tuple[str, ...],
              learners: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Means with 95 % intervals, and each learner's paired difference to the best heuristic."""
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
    paired = {}
    for name in learners:
        if name not in values:
            continue
        diff = values[name] - values[best]
        mean, half = t_interval(list(diff))
        paired[name] = {"vs": best, "mean_diff_s": mean, "ci95": [mean - half, mean + half],
                        "ratio": float(np.mean(values[name]) / np.mean(values[best])),
                        "per_seed_diff": [float(x) for x in diff]}
    out["paired"] = paired
    return out
