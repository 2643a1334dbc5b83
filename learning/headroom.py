"""How much better than the greedy heuristic can a proactive placement be? Oracle policies for
the headroom experiment behind docs/results.md (not caching policies a system could run).

Both oracles are the greedy heuristic (`delivery.policies.greedy_proxy`, the same proxy and
fill) fed better demand than the request counts any real policy sees:
- `greedy-truepop`: the request process's true popularity of the coming slot (what a perfect
  popularity forecast, ESN or otherwise, could at best deliver);
- `greedy-clairvoyant`: the coming slot's actual requests (no proactive policy can know them).

A third reference is a bound, not a policy: `fullcache` holds every PB at every EN (the scenario
at cache_fraction 1, caches filled off-line before slot 0, so nothing is ever fetched or
loaded). The schedule is completion-time aware (more cache never slows a slot), so no placement
within the real capacity can beat it: the gap from the best heuristic to `fullcache` is all that
caching decisions of any kind can still gain on that scenario.

The oracles read the truth from a twin of the scenario's request process: `Simulator` spawns the
request stream from the scenario seed exactly as `delivery.experiment.run_policy` does, so the
twin draws the very requests the evaluated simulator will draw, slot by slot. If even the
clairvoyant greedy gains little over greedy, no learner that only re-ranks PBs from the same
observations can gain more than that through better demand knowledge.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import seed_streams
from delivery.policies import greedy_proxy
from delivery.proxy import proxy_instance
from delivery.simulator import Simulator
from pbkit.library import PBLibrary

ORACLES = ("greedy-truepop", "greedy-clairvoyant")
BOUNDS = ("fullcache",)


class FullCache:
    """Every PB at every EN; run it on `full_cache_scenario(config)` (capacity = all bytes)."""

    name = "fullcache"
    mode: str | None = None

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        needed = np.asarray(view.membership, dtype=bool).any(axis=0)  # what the capacity counts
        return np.broadcast_to(needed, (len(view.capacity_bytes), len(needed))).copy()


def full_cache_scenario(config: ScenarioConfig) -> ScenarioConfig:
    """The scenario with room for the whole library at every EN."""
    return config.replace(cache_fraction=1.0, cache_bytes=None)


class OracleGreedy:
    """Greedy placement on the true popularity (`truepop`) or the actual next requests."""

    mode: str | None = None

    def __init__(self, config: ScenarioConfig, library: PBLibrary, seed: int, kind: str) -> None:
        if kind not in ORACLES:
            raise ValueError(f"oracle {kind!r} is not one of {', '.join(ORACLES)}")
        self.name, self.kind = kind, kind
        self.twin = Simulator(config, library, seed_streams(seed)[0])  # same streams as the harness

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        requests = self.twin.requests
        if view.slot != requests.slot:
            raise ValueError(f"oracle out of step: view slot {view.slot}, twin slot {requests.slot}")
        popularity = requests.popularity()  # (N, I) before this slot's draw
        drawn = requests.draw(self.twin.topology.user_home)  # the slot's requests (K,)
        if self.kind == "greedy-truepop":
            demand = view.users_per_node[:, None] * popularity
        else:
            demand = np.zeros_like(popularity)
            np.add.at(demand, (self.twin.topology.user_home, drawn), 1.0)
        inst = proxy_instance(view)
        inst = dataclasses.replace(inst, weight=demand @ view.membership.astype(float))
        return greedy_proxy(inst)
