"""What an agent observes, as pure functions of a compact state, shared by the environment,
the learner's replay (which stores only the compact state) and the data-augmentation model
(which rolls the compact state forward with predicted requests).

Compact state of one slot: the current placement P (N, J) bool, the exponential moving average
E (N, I) and last-slot share L (N, I) of each EN's users requesting each model, and the number
of users per EN u (N,). Everything else (PB sizes, membership, capacities, neighbour lists)
is the static `Layout` of the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OWN_FEATURES = 8      # per (EN, PB) features from the agent's own view
NEIGHBOUR_FEATURES = 5  # per (EN, neighbour, PB) features received from that neighbour
STATE_FEATURES = 8    # per PB features of the global state (critic only)

# Action codes per (EN, PB): 0 drop, 1 cache, 2 + d = ask neighbour d to hold the PB (pull from it)
DROP, CACHE, PULL0 = 0, 1, 2


@dataclass(frozen=True)
class Layout:
    """Static facts of a scenario that the features need."""

    pb_bytes: np.ndarray       # (J,) int64
    membership: np.ndarray     # (I, J) bool
    capacity: np.ndarray       # (N,) int64 bytes
    neighbours: np.ndarray     # (N, N) bool, no self loops
    max_degree: int            # D, padded neighbour count (action space size is 2 + D)

    @classmethod
    def from_view(cls, view) -> "Layout":
        """The layout of a scenario, from a `delivery.simulator.PolicyView`."""
        neighbours = np.asarray(view.neighbours, dtype=bool).copy()
        np.fill_diagonal(neighbours, False)
        return cls(
            pb_bytes=np.asarray(view.pb_bytes, dtype=np.int64),
            membership=np.asarray(view.membership, dtype=bool),
            capacity=np.asarray(view.capacity_bytes, dtype=np.int64),
            neighbours=neighbours,
            max_degree=max(1, int(neighbours.sum(axis=1).max())),
        )

    @property
    def n_nodes(self) -> int:
        return len(self.capacity)

    @property
    def n_pbs(self) -> int:
        return len(self.pb_bytes)

    @property
    def n_models(self) -> int:
        return self.membership.shape[0]

    @property
    def n_actions(self) -> int:
        return 2 + self.max_degree

    def neighbour_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) neighbour ids padded with 0, and (N, D) bool validity."""
        idx = np.zeros((self.n_nodes, self.max_degree), dtype=np.int64)
        valid = np.zeros((self.n_nodes, self.max_degree), dtype=bool)
        for n in range(self.n_nodes):
            nbs = np.flatnonzero(self.neighbours[n])[: self.max_degree]
            idx[n, : len(nbs)] = nbs
            valid[n, : len(nbs)] = True
        return idx, valid

    def action_mask(self) -> np.ndarray:
        """(N, J, A) int8: drop and cache always allowed; pulls only from real neighbours and
        only for PBs that fit in that neighbour's cache at all."""
        _, valid = self.neighbour_index()
        idx, _ = self.neighbour_index()
        mask = np.ones((self.n_nodes, self.n_pbs, self.n_actions), dtype=np.int8)
        fits = self.pb_bytes[None, :] <= self.capacity[:, None]          # (N, J)
        mask[:, :, CACHE] = fits
        for d in range(self.max_degree):
            mask[:, :, PULL0 + d] = valid[:, d : d + 1] & fits[idx[:, d]]
        return mask

    def same_as(self, other: "Layout") -> bool:
        return (
            np.array_equal(self.pb_bytes, other.pb_bytes)
            and np.array_equal(self.membership, other.membership)
            and np.array_equal(self.capacity, other.capacity)
            and np.array_equal(self.neighbours, other.neighbours)
            and self.max_degree == other.max_degree
        )


def request_share(requests_per_node: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Per-EN share of users requesting each model: counts (..., N, I) / users (..., N)."""
    return requests_per_node / np.maximum(users, 1)[..., None]


def observe(layout: Layout, placement: np.ndarray, ema: np.ndarray, last: np.ndarray,
            users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-agent observations (..., N, J, F_own + D * F_nb) and global state (..., J, F_state).

    Leading batch dimensions are allowed on placement/ema/last/users.
    """
    member = layout.membership.astype(np.float64)
    sizes = layout.pb_bytes.astype(np.float64)
    mean_size = max(sizes.mean(), 1.0)
    total = max(sizes.sum(), 1.0)
    p = placement.astype(np.float64)                                  # (..., N, J)
    demand = ema @ member                                             # (..., N, J) share of users needing j
    demand_last = last @ member
    rel_users = users / max(float(np.mean(users)), 1e-9) if np.ndim(users) == 1 else (
        users / np.maximum(users.mean(axis=-1, keepdims=True), 1e-9))
    size_rel = np.log(np.maximum(sizes, 1.0) / mean_size)             # (J,)
    density = np.minimum(demand * (mean_size / np.maximum(sizes, 1.0)), 10.0) / 10.0
    cap_rel = layout.capacity / total                                 # (N,)
    shared_by = member.mean(axis=0)                                   # (J,)
    batch = p.shape[:-2]
    n, j = layout.n_nodes, layout.n_pbs

    def bcast(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, batch + (n, j))

    own = np.stack(
        [
            p,
            bcast(size_rel[None, :]),
            bcast(cap_rel[:, None]),
            demand,
            demand_last,
            density,
            bcast(rel_users[..., :, None]),
            bcast(shared_by[None, :]),
        ],
        axis=-1,
    )
    idx, valid = layout.neighbour_index()
    v = valid[:, :, None].astype(np.float64)                          # (N, D, 1)
    nb = np.stack(
        [
            p[..., idx, :] * v,
            demand[..., idx, :] * v,
            demand_last[..., idx, :] * v,
            np.broadcast_to(rel_users[..., idx, None], batch + idx.shape + (j,)) * v,
            np.broadcast_to(v, batch + idx.shape + (j,)),
        ],
        axis=-1,
    )                                                                  # (..., N, D, J, F_nb)
    nb = np.moveaxis(nb, -3, -2).reshape(batch + (n, j, layout.max_degree * NEIGHBOUR_FEATURES))
    obs = np.concatenate([own, nb], axis=-1).astype(np.float32)

    weight = rel_users[..., :, None] / n                               # user-weighted node average
    covered = (demand * p * weight).sum(axis=-2) / np.maximum((demand * weight).sum(axis=-2), 1e-9)
    state = np.stack(
        [
            p.mean(axis=-2),
            demand.mean(axis=-2),
            demand.max(axis=-2),
            demand_last.mean(axis=-2),
            covered,
            np.broadcast_to(size_rel, batch + (j,)),
            np.broadcast_to(shared_by, batch + (j,)),
            np.broadcast_to(cap_rel.mean(), batch + (j,)),
        ],
        axis=-1,
    ).astype(np.float32)
    return obs, state


def project(layout: Layout, actions: np.ndarray, priority: np.ndarray | None = None) -> np.ndarray:
    """Turn per-(EN, PB) action codes (N, J) into a feasible placement (N, J) bool.

    Each EN ranks the PBs it was asked to hold: its own "cache" choices first (ordered by the
    actor's confidence `priority`, default 0), then PBs neighbours asked it to hold (more asks
    first); it admits them in that order while they fit. Masked/invalid codes count as drop, so
    no action can exceed a capacity.
    """
    n_nodes, n_pbs = layout.n_nodes, layout.n_pbs
    idx, valid = layout.neighbour_index()
    score = np.zeros((n_nodes, n_pbs))
    own = actions == CACHE
    score[own] = 2.0 + (0.0 if priority is None else np.clip(priority[own], 0.0, 1.0))
    for d in range(layout.max_degree):
        asked = (actions == PULL0 + d) & valid[:, d : d + 1]
        for n in np.flatnonzero(valid[:, d]):
            score[idx[n, d]] += np.where(asked[n], 0.5, 0.0) * (score[idx[n, d]] < 2.0)
    placement = np.zeros((n_nodes, n_pbs), dtype=bool)
    sizes = layout.pb_bytes
    for n in range(n_nodes):
        order = np.lexsort((np.arange(n_pbs), -score[n]))  # stable: ties by PB index
        free = int(layout.capacity[n])
        for j in order:
            if score[n, j] <= 0.0:
                break
            if sizes[j] <= free:
                placement[n, j] = True
                free -= int(sizes[j])
    return placement


def ema_update(ema: np.ndarray, last: np.ndarray, alpha: float) -> np.ndarray:
    """Moving average of request shares; an EN that has seen nothing yet starts from `last`."""
    fresh = ema.sum(axis=-1, keepdims=True) <= 0.0
    return np.where(fresh, last, (1.0 - alpha) * ema + alpha * last)


def effective_actions(layout: Layout, actions: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """The action codes that the projection actually carried out (..., N, J): a "cache" that did
    not fit and a "pull" from a neighbour that does not hold the PB become "drop". The critic
    learns from these, so its inputs describe the placement the reward came from."""
    idx, valid = layout.neighbour_index()
    out = np.where((actions == CACHE) & ~placement, DROP, actions)
    for d in range(layout.max_degree):
        holds = placement[..., idx[:, d], :] & valid[:, d : d + 1]
        out = np.where((out == PULL0 + d) & ~holds, DROP, out)
    return out.astype(np.int8)
