"""`spreading`: a trend starts in one cell and reaches the neighbouring cells with a lag.

Under a stationary background (one Zipf(gamma) ranking per region, as `stationary` without
drift), a new trend starts every `period` slots: a random model, in a random origin cell. In a
cell h hops from the origin (hex adjacency) the trend is on from slot s + h * lag for
`duration` slots, and takes `share` of that cell's requests while on. Geographic spreading with
a delay is what the spread of video popularity across regions shows (Brodersen, Scellato and
Wattenhofer, "YouTube around the world", WWW 2012: popularity is local and spreads outward);
the numbers (a trend every 4 slots, 1 slot per hop, 8 slots long, 40 % of requests) are guesses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delivery.demand.base import DemandProcess, zipf_weights


def hop_distance(neighbours: np.ndarray) -> np.ndarray:
    """(N, N) hop counts on the adjacency graph (breadth first); unreachable: a large number."""
    n = len(neighbours)
    out = np.full((n, n), 10 * n, dtype=int)
    for s in range(n):
        out[s, s] = 0
        frontier = [s]
        while frontier:
            nxt = []
            for a in frontier:
                for b in np.nonzero(neighbours[a])[0]:
                    if out[s, b] > out[s, a] + 1:
                        out[s, b] = out[s, a] + 1
                        nxt.append(int(b))
            frontier = nxt
    return out


@dataclass
class SpreadingProcess(DemandProcess):
    n_models: int
    n_regions: int
    neighbours: np.ndarray  # (N, N) bool
    gamma: float
    period_slots: int
    lag_slots: int
    duration_slots: int
    share: float
    rng: np.random.Generator
    slot: int = field(init=False, default=0)
    trends: list[tuple[int, int, int]] = field(init=False, default_factory=list)  # (start, origin, model)

    def __post_init__(self) -> None:
        pmf = zipf_weights(self.n_models, self.gamma)
        self.background = np.zeros((self.n_regions, self.n_models))
        for n in range(self.n_regions):
            self.background[n, self.rng.permutation(self.n_models)] = pmf
        self.hops = hop_distance(self.neighbours)
        self._start_trend()

    def trend_on(self, start: int, origin: int) -> np.ndarray:
        """(R,) bool: the trend (start, origin) is on in each region in the coming slot."""
        begin = start + self.hops[origin] * self.lag_slots
        return (self.slot >= begin) & (self.slot < begin + self.duration_slots)

    def region_popularity(self) -> np.ndarray:
        out = self.background.copy()
        for start, origin, model in self.trends:
            on = self.trend_on(start, origin)
            out[on] *= 1.0 - self.share
            out[on, model] += self.share
        return out / out.sum(axis=1, keepdims=True)

    def _advance(self) -> None:
        self._start_trend()

    def _start_trend(self) -> None:
        if self.slot % self.period_slots == 0:
            self.trends.append(
                (self.slot, int(self.rng.integers(self.n_regions)), int(self.rng.integers(self.n_models)))
            )
        last = self.hops.max() * self.lag_slots + self.duration_slots
        self.trends = [tr for tr in self.trends if self.slot < tr[0] + last]
