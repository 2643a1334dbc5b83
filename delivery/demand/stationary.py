"""`stationary`: Zipf popularity over models, one ranking per region, drifting by rank swaps.

The process of the project's earlier results, kept stream-for-stream (same seed, same requests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delivery.demand.base import DemandProcess


@dataclass
class StationaryProcess(DemandProcess):
    """Every slot each user requests one model, Zipf(gamma) over its home region's ranking.

    Region n's ranking starts as an independent random permutation of the I models (regions
    differ in taste). Every `drift_period` slots, `drift_swaps` random pairs of ranks are swapped
    in every region, so the popularity a proactive policy learned goes stale.
    """

    n_models: int
    n_regions: int
    gamma: float
    drift_period: int
    drift_swaps: int
    rng: np.random.Generator
    ranking: np.ndarray = field(init=False)  # (R, I): ranking[n, r] = model at rank r in region n
    slot: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.ranking = np.stack([self.rng.permutation(self.n_models) for _ in range(self.n_regions)])
        weights = np.arange(1, self.n_models + 1, dtype=float) ** (-self.gamma)
        self._rank_cdf = np.cumsum(weights / weights.sum())

    def region_popularity(self) -> np.ndarray:
        pmf = np.diff(np.concatenate([[0.0], self._rank_cdf]))
        out = np.empty((self.n_regions, self.n_models))
        for n in range(self.n_regions):
            out[n, self.ranking[n]] = pmf
        return out

    def draw(self, user_home: np.ndarray) -> np.ndarray:
        """The slot's requests (K,) and the drift that follows the slot (the earlier stream)."""
        u = self.rng.uniform(size=len(user_home))
        ranks = np.minimum(np.searchsorted(self._rank_cdf, u, side="right"), self.n_models - 1)
        requests = self.ranking[np.asarray(user_home), ranks]
        self.slot += 1
        if self.slot % self.drift_period == 0 and self.n_models > 1:
            for n in range(self.n_regions):
                for _ in range(self.drift_swaps):
                    a, b = self.rng.choice(self.n_models, size=2, replace=False)
                    self.ranking[n, [a, b]] = self.ranking[n, [b, a]]
        return requests
