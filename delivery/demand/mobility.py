"""`mobility`: users move between cells (random waypoint) and keep their own tastes.

User k's taste is the Zipf(gamma) ranking of the region it starts in (regions differ in taste,
as in `stationary`, without drift); it keeps it wherever it goes, so the demand an EN sees
changes as users come and go. Movement is the random waypoint model (Johnson and Maltz, 1996;
Camp, Boleng and Davies, "A survey of mobility models for ad hoc network research", 2002):
each user walks straight to a waypoint drawn uniformly over the cells, at its own speed, then
draws the next one. Speeds are uniform in [0.5, 1.5] x `step_m` metres per slot (a minimum
speed above zero avoids the model's known speed decay: Yoon, Liu and Noble, INFOCOM 2003).
The default step of 50 m per slot is a pedestrian at 3 km/h (3GPP TR 38.901's UT speed) over
one-minute slots: the slot length is a guess. Large-scale gains follow the user (path loss of
the new distance; a user's shadowing to each EN is kept); fading is drawn per slot as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delivery.demand.base import DemandProcess, zipf_weights
from delivery.topology import drop_users


@dataclass
class MobilityProcess(DemandProcess):
    n_models: int
    n_regions: int
    node_xy: np.ndarray  # (N, 2)
    user_xy: np.ndarray  # (K, 2) positions at slot 0
    isd_m: float
    min_distance_m: float
    gamma: float
    step_m: float
    rng: np.random.Generator
    slot: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.xy = np.array(self.user_xy, dtype=float)
        k = len(self.xy)
        pmf = zipf_weights(self.n_models, self.gamma)
        region_taste = np.zeros((self.n_regions, self.n_models))
        for n in range(self.n_regions):
            region_taste[n, self.rng.permutation(self.n_models)] = pmf
        self.taste = region_taste[self.homes()]  # (K, I), fixed for good
        self.speed = self.step_m * self.rng.uniform(0.5, 1.5, size=k)
        self.waypoint = self._waypoints(k)

    def _waypoints(self, count: int) -> np.ndarray:
        return drop_users(self.rng, self.node_xy, count, self.isd_m, self.min_distance_m)

    def homes(self) -> np.ndarray:
        """(K,) nearest EN of each user in the coming slot."""
        d = np.linalg.norm(self.xy[:, None, :] - self.node_xy[None, :, :], axis=2)
        return d.argmin(axis=1)

    def positions(self) -> np.ndarray:
        return self.xy.copy()

    def user_popularity(self, user_home: np.ndarray) -> np.ndarray:
        return self.taste

    def region_popularity(self) -> np.ndarray:
        """Mean taste of the users in each region now (all users' mean where a region is empty)."""
        home = self.homes()
        out = np.repeat(self.taste.mean(axis=0, keepdims=True), self.n_regions, axis=0)
        for n in np.unique(home):
            out[n] = self.taste[home == n].mean(axis=0)
        return out

    def _advance(self) -> None:
        """Walk one slot towards the waypoints; users that reach theirs draw a new one."""
        left = self.speed.copy()
        for _ in range(4):  # a user may pass a waypoint within a slot; bounded
            gap = self.waypoint - self.xy
            dist = np.linalg.norm(gap, axis=1)
            arrive = dist <= left
            move = np.where(arrive, 1.0, left / np.maximum(dist, 1e-12))
            self.xy = self.xy + gap * move[:, None]
            left = np.where(arrive, left - dist, 0.0)
            if not arrive.any():
                break
            self.waypoint[arrive] = self._waypoints(int(arrive.sum()))
        # stay min_distance_m away from every EN (the drop's rule): push out radially
        rel = self.xy[:, None, :] - self.node_xy[None, :, :]
        d = np.linalg.norm(rel, axis=2)
        close = d < self.min_distance_m
        for k, n in zip(*np.nonzero(close)):
            direction = rel[k, n] / max(d[k, n], 1e-9) if d[k, n] > 0 else np.array([1.0, 0.0])
            self.xy[k] = self.node_xy[n] + direction * self.min_distance_m
