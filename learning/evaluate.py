"""Fixed-scenario evaluation: every policy (learned or heuristic) sees the same users, requests
and channels for a given seed, because the simulator draws them from streams spawned from the
seed that no placement can disturb."""

from __future__ import annotations

from typing import Callable

import numpy as np

from delivery.config import ScenarioConfig
from delivery.simulator import Simulator
from pbkit.library import PBLibrary


def run_episode(policy, library: PBLibrary, scenario: ScenarioConfig, seed: int, slots: int) -> dict[str, float]:
    """Mean over slots of the slot mean delay (and hit ratio) for one seeded scenario."""
    sim = Simulator(scenario, library, np.random.default_rng(seed))
    policy_rng = np.random.default_rng([seed, 1])
    delays, hits = [], []
    for _ in range(slots):
        placement = policy.place(sim.policy_view(), policy_rng)
        result = sim.step(placement)
        delays.append(result.mean_delay_s)
        hits.append(result.hit_ratio_local)
    return {"mean_delay_s": float(np.mean(delays)), "hit_ratio_local": float(np.mean(hits))}


def evaluate(make: Callable[[], object], library: PBLibrary, scenario: ScenarioConfig,
             seeds: tuple[int, ...] | list[int], slots: int) -> np.ndarray:
    """Per-seed mean delay (seconds) of a fresh policy from `make()` on each seed.

    A policy with a `mode` attribute (coarse, noncoop baselines) runs in that delivery mode."""
    out = []
    for s in seeds:
        policy = make()
        mode = getattr(policy, "mode", None)
        sc = scenario.replace(mode=mode) if mode and mode != scenario.mode else scenario
        out.append(run_episode(policy, library, sc, s, slots)["mean_delay_s"])
    return np.array(out)


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator, resamples: int = 10000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
