"""Where the edge nodes and users are: a hexagonal layout, uniform user drop, large-scale gains."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Unit normals of a hexagon's three pairs of sides for the lattice x = isd (q + r/2),
# y = isd r sqrt(3)/2: a point is inside the cell of centre c iff |<p - c, u>| <= isd/2 for all u.
_HEX_NORMALS = np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2], [-0.5, math.sqrt(3) / 2]])


@dataclass(frozen=True)
class Topology:
    node_xy: np.ndarray  # (N, 2) metres
    user_xy: np.ndarray  # (K, 2) metres
    distance_m: np.ndarray  # (K, N)
    gain_db: np.ndarray  # (K, N) large-scale gain beta (negative dB: path loss + shadowing)
    user_home: np.ndarray  # (K,) nearest EN
    neighbours: np.ndarray  # (N, N) bool, hex-adjacent ENs (centre distance = ISD)

    @property
    def gain_lin(self) -> np.ndarray:
        return 10.0 ** (self.gain_db / 10.0)

    @property
    def users_per_node(self) -> np.ndarray:
        return np.bincount(self.user_home, minlength=len(self.node_xy))


def hex_centres(n: int, isd_m: float) -> np.ndarray:
    """The first n centres of a hexagonal grid, ring by ring around the origin."""
    axial = [(0, 0)]
    ring = 1
    while len(axial) < n:
        q, r = -ring, ring  # start at one corner of the ring, walk its six sides
        for dq, dr in [(1, 0), (1, -1), (0, -1), (-1, 0), (-1, 1), (0, 1)]:
            for _ in range(ring):
                axial.append((q, r))
                q, r = q + dq, r + dr
        ring += 1
    axial = axial[:n]
    return np.array([[isd_m * (q + r / 2.0), isd_m * r * math.sqrt(3) / 2.0] for q, r in axial])


def path_loss_db(distance_m: np.ndarray) -> np.ndarray:
    """3GPP TR 36.814 macro model: 128.1 + 37.6 log10(d in km)."""
    return 128.1 + 37.6 * np.log10(distance_m / 1000.0)


def drop_users(
    rng: np.random.Generator, node_xy: np.ndarray, n_users: int, isd_m: float, min_distance_m: float
) -> np.ndarray:
    """Users uniform over the union of the hexagonal cells, at least min_distance_m from every EN."""
    half = isd_m / 2.0
    radius = isd_m / math.sqrt(3)  # circumradius of a cell
    lo = node_xy.min(axis=0) - radius
    hi = node_xy.max(axis=0) + radius
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n_users:
        p = rng.uniform(lo, hi, size=(4 * n_users, 2))
        rel = p[:, None, :] - node_xy[None, :, :]  # (M, N, 2)
        inside = (np.abs(rel @ _HEX_NORMALS.T) <= half).all(axis=2)  # (M, N)
        far = (np.linalg.norm(rel, axis=2) >= min_distance_m).all(axis=1)
        out.append(p[inside.any(axis=1) & far])
    return np.concatenate(out)[:n_users]


def build_topology(
    rng: np.random.Generator,
    n_nodes: int,
    n_users: int,
    isd_m: float,
    shadowing_db: float,
    min_distance_m: float,
) -> Topology:
    node_xy = hex_centres(n_nodes, isd_m)
    user_xy = drop_users(rng, node_xy, n_users, isd_m, min_distance_m)
    distance = np.linalg.norm(user_xy[:, None, :] - node_xy[None, :, :], axis=2)
    gain_db = -path_loss_db(distance)
    if shadowing_db > 0:
        gain_db = gain_db + rng.normal(0.0, shadowing_db, size=gain_db.shape)
    centre_d = np.linalg.norm(node_xy[:, None, :] - node_xy[None, :, :], axis=2)
    neighbours = (centre_d > 0) & (centre_d <= 1.01 * isd_m)
    return Topology(
        node_xy=node_xy,
        user_xy=user_xy,
        distance_m=distance,
        gain_db=gain_db,
        user_home=distance.argmin(axis=1),
        neighbours=neighbours,
    )


def relocate(topology: Topology, user_xy: np.ndarray) -> Topology:
    """The topology with users at new positions: distances, homes and path loss follow them;
    each user's shadowing to each EN (gain minus path loss at the old distance) is kept."""
    shadow = topology.gain_db + path_loss_db(topology.distance_m)
    distance = np.linalg.norm(user_xy[:, None, :] - topology.node_xy[None, :, :], axis=2)
    return Topology(
        node_xy=topology.node_xy,
        user_xy=np.array(user_xy, dtype=float),
        distance_m=distance,
        gain_db=-path_loss_db(distance) + shadow,
        user_home=distance.argmin(axis=1),
        neighbours=topology.neighbours,
    )
