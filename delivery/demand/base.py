"""What every request process is: per-user request probabilities for the coming slot, a draw.

A process is a random sequence of slots. Its state evolves by itself (release times, trends,
user movement, rank drifts), never by what a policy does, so a copy of it (`copy.deepcopy`)
advanced by `draw` shows the very popularity and requests the simulator will see: that is how
the reference policies read the truth (delivery.truth), and nothing else may.
"""

from __future__ import annotations

import numpy as np


class DemandProcess:
    """Base of the request processes. Subclasses set n_models, n_regions and implement
    `region_popularity` (or `user_popularity`), and `_advance` for what changes between slots."""

    n_models: int
    n_regions: int
    rng: np.random.Generator
    slot: int = 0

    def region_popularity(self) -> np.ndarray:
        """(R, I) request probability of each model in each region (EN) in the coming slot."""
        raise NotImplementedError

    def popularity(self) -> np.ndarray:
        """(R, I) the coming slot's popularity per region (the truth a perfect forecast gives)."""
        return self.region_popularity()

    def user_popularity(self, user_home: np.ndarray) -> np.ndarray:
        """(K, I) request probabilities of each user in the coming slot: its region's, unless
        the process gives users their own tastes (mobility)."""
        return self.region_popularity()[np.asarray(user_home)]

    def positions(self) -> np.ndarray | None:
        """(K, 2) user positions in the coming slot, or None when users do not move."""
        return None

    def draw(self, user_home: np.ndarray) -> np.ndarray:
        """The coming slot's requests (K,), one model per user; then advance one slot."""
        pmf = self.user_popularity(user_home)
        requests = sample_rows(pmf, self.rng.uniform(size=len(pmf)))
        self.slot += 1
        self._advance()
        return requests

    def _advance(self) -> None:
        """Evolve the state to the (new) coming slot `self.slot`."""


def sample_rows(pmf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sample of one index per row of a (K, I) probability table, u ~ U(0,1) (K,)."""
    cdf = np.cumsum(pmf, axis=1)
    cdf /= cdf[:, -1:]
    return np.minimum((cdf < u[:, None]).sum(axis=1), pmf.shape[1] - 1)


def zipf_weights(n: int, gamma: float) -> np.ndarray:
    """Zipf(gamma) probabilities of ranks 1..n."""
    w = np.arange(1, n + 1, dtype=float) ** (-gamma)
    return w / w.sum()
