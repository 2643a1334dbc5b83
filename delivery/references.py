"""References and bounds: placements no real system can compute, to measure what is left to gain.

- `fullcache`: every PB at every EN, run with room for the whole catalogue (a bound: the
  schedule never gets slower with more cache, so no placement within the real capacity beats it).
- `oracle`: the greedy heuristic fed the TRUE expected demand of the slots its placement serves.
  A PB added to a cache before slot t is loaded during slot t and serves from slot t + 1, while
  the PBs it keeps serve slot t too: so slots t and t + 1 (`serves="both"`, the default);
  `serves="next"` feeds slot t + 1 alone (slot 0, whose caches are filled off-line: both).
- `greedy-truepop`, `greedy-clairvoyant`: the greedy heuristic (the same proxy and fill) fed
  the coming slot's true popularity (what a perfect popularity forecast, ESN or otherwise,
  could at best deliver), or the actual requests of the slots its placement serves (t and
  t + 1, as `oracle`; no proactive policy can know them). If even
  the clairvoyant greedy gains little over greedy, no learner that only re-ranks PBs from the
  same observations can gain more than that through better demand knowledge (the headroom
  references of `learn report`, ORACLES).
- `search`: a placement search simulated on the actual future: candidates (oracle's placement,
  greedy on the true demand of slot t + 1 alone, greedy on the actual requests of t + 1,
  greedy's own placement on the counts, the current placement) and then `moves` local moves (default 1: each costs two simulated slots;
  swap the weakest cached PB of an EN for the strongest uncached ones), each scored
  by simulating slots t and t + 1 on a fork of the simulator (the very requests, channels and
  solver draws the run will see), keeping the best. An upper reference, not an optimum: it is
  myopic (two slots) and searches a small neighbourhood.

The references read `view.truth` (delivery.simulator.Truth); everything else must not.
"""

from __future__ import annotations

import numpy as np

from delivery.errors import ConfigError
from delivery.modes import places_models
from delivery.policies import greedy_on_demand
from delivery.proxy import demand_estimate
from delivery.storage import storage_bytes

# the headroom references of `learn report`: demand oracles, and the bound
ORACLES = ("greedy-truepop", "greedy-clairvoyant")
BOUNDS = ("fullcache",)


def _truth(view, name: str):
    if view.truth is None:
        raise ConfigError(f"policy {name!r} reads the future and runs only inside the simulator (view.truth)")
    return view.truth


class FullCachePolicy:
    """Every PB at every EN; `scenario_overrides` gives it the room (run_policy applies them)."""

    name = "fullcache"
    mode: str | None = None
    scenario_overrides = {"cache_fraction": 1.0, "cache_bytes": None}

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        needed = np.asarray(view.membership, dtype=bool).any(axis=0)  # what the capacity counts
        return np.broadcast_to(needed, (len(view.capacity_bytes), len(needed))).copy()


class OraclePolicy:
    """Greedy (delivery.policies.greedy_on_demand) on the true demand of the slot served."""

    name = "oracle"
    mode: str | None = None

    def __init__(self, serves: str = "both") -> None:
        if serves not in ("next", "both"):
            raise ValueError(f"serves {serves!r} is not 'next' or 'both'")
        self.serves = serves  # "next": slot t + 1; "both": slots t (kept PBs) and t + 1

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        truth = _truth(view, self.name)
        t = view.slot
        demand = truth.demand(t + 1)
        if t == 0 or self.serves == "both":  # caches filled off-line serve slot 0 as well
            demand = demand + truth.demand(t)
        return greedy_on_demand(view, demand)


class TruePopularityGreedy:
    """Greedy on the coming slot's true popularity: each EN's users times its region's shares."""

    name = "greedy-truepop"
    mode: str | None = None

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        popularity = _truth(view, self.name).popularity()  # (N, I) before this slot's draw
        return greedy_on_demand(view, view.users_per_node[:, None] * popularity)


class ClairvoyantGreedy:
    """Greedy on the actual requests (one per user) of the slots the placement serves, t and
    t + 1 as for `oracle`, counted at the users' homes of slot t (also under mobility), plus
    1 % of their true demand so models nobody asks for keep their true order."""

    name = "greedy-clairvoyant"
    mode: str | None = None

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        truth = _truth(view, self.name)
        demand = np.zeros(view.request_counts.shape)
        for slot in (view.slot, view.slot + 1):
            try:
                np.add.at(demand, (view.user_home, truth.requests(slot)), 1.0)
                demand += 0.01 * truth.demand(slot)
            except ConfigError:  # a replayed trace ends: the slots there are
                break
        return greedy_on_demand(view, demand)


class SearchPolicy:
    """Simulation-based placement search over two slots (see the module docstring)."""

    name = "search"
    mode: str | None = None

    def __init__(self, moves: int = 1, horizon: int = 2) -> None:
        self.moves = moves
        self.horizon = horizon
        self.evaluations = 0

    def _cost(self, view, x: np.ndarray) -> float:
        """Mean delay over the next `horizon` slots with placement x kept, on a fork."""
        fork = view.truth.fork()
        total, done = 0.0, 0
        for _ in range(self.horizon):
            try:
                total += fork.step(x).mean_delay_s
            except ConfigError:  # a trace ends: score the slots there are
                break
            done += 1
        self.evaluations += 1
        return total / max(done, 1)

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        truth = _truth(view, self.name)
        t = view.slot
        nxt = truth.demand(t + 1)
        now = truth.demand(t)
        actual = np.zeros_like(nxt)
        try:
            np.add.at(actual, (view.user_home, truth.requests(t + 1)), 1.0)
        except ConfigError:
            actual = nxt
        candidates = [greedy_on_demand(view, d) for d in (now + nxt, nxt, actual + 0.01 * nxt)]
        # greedy's own placement (on the counts it sees) too, so each step's choice is at least
        # as good as greedy's on the two slots scored
        candidates.append(greedy_on_demand(view, demand_estimate(view)))
        used = storage_bytes(view.placement, view.membership, view.pb_bytes, view.mode)
        if t > 0 and (used <= view.capacity_bytes).all():
            candidates.append(view.placement.copy())
        costs = [self._cost(view, x) for x in candidates]
        best = int(np.argmin(costs))
        x, cost = candidates[best], costs[best]
        weight = (now + nxt) @ view.membership.astype(float)  # (N, J) expected requests over both slots
        per_byte = weight / np.maximum(view.pb_bytes, 1)[None, :]
        for _ in range(self.moves):
            trial = self._move(view, x, per_byte, rng)
            if trial is None:
                break
            c = self._cost(view, trial)
            if c < cost:
                x, cost = trial, c
        return x

    @staticmethod
    def _move(view, x: np.ndarray, per_byte: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """At a random EN, drop the cached PB of least demand per byte and fill the freed room
        with the uncached PBs of most demand per byte (PB placements; modes that place whole
        models keep x)."""
        if places_models(view.mode):
            return None
        n = int(rng.integers(len(view.capacity_bytes)))
        held = np.nonzero(x[n])[0]
        if len(held) == 0:
            return None
        out = x.copy()
        weakest = held[np.argmin(per_byte[n, held])]
        out[n, weakest] = False
        left = int(view.capacity_bytes[n]) - int(view.pb_bytes[out[n]].sum())
        for j in np.argsort(-per_byte[n], kind="stable"):
            if not out[n, j] and j != weakest and per_byte[n, j] > 0 and view.pb_bytes[j] <= left:
                out[n, j] = True
                left -= int(view.pb_bytes[j])
        return None if np.array_equal(out, x) else out
