"""What an agent observes, as pure functions of a compact state, shared by the environment,
the learner's replay (which stores only compact states) and the learned policy.

No heuristic's answer is in any input: every feature is request history, placement, sizes or
the scenario's static layout (tests/learning/test_decentralised.py checks that the builders never
call a heuristic and that an agent's observation depends on its own EN and its neighbours only).

Compact state of one slot (`Snapshot`, a dict of arrays; leading batch dimensions allowed):
placement P (N, J) bool; per EN the share of its users requesting each model in the last slot
L, a moving average of those shares E, the Laplace-smoothed cumulative shares C and a forecast
of the next slot's shares F (N, I) (the moving average unless a forecaster, e.g. the ESN of
`learning.augmentation`, supplies one); the age of each model at each EN, slots since it was
first requested there, A (N, I); users per EN u (N,); and the time of day phase () (the
position in the scenario's day if it has one, else in the request-drift period). Everything
else (PB sizes, membership, capacities, neighbour lists) is the static `Layout` of the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from delivery.config import ScenarioConfig
from delivery.storage import fill_in_order

OWN_FEATURES = 16  # per (EN, PB) features from the agent's own view
NEIGHBOUR_FEATURES = 7  # per (EN, neighbour, PB) features received from that neighbour
STATE_FEATURES = 11  # per PB features of the global state (critic only)

# Action codes per (EN, PB): 0 drop, 1 cache, 2 + d = ask neighbour d to hold the PB (pull from it)
DROP, CACHE, PULL0 = 0, 1, 2
ASK_BONUS = 1.0  # score (logit units) a neighbour's "hold it for me" adds to a PB at that EN
NEW_MODEL_SLOTS = 10.0  # age scale of the novelty feature: a model first seen 10 slots ago weighs 1/e
UNSEEN_AGE = 1e6  # age of a model never requested at an EN
LOG_FLOOR = 1e-4  # added before the logs of shares: a share below 1e-4 reads as about nothing

SNAPSHOT_KEYS = ("placement", "ema", "last", "cum", "forecast", "age", "users", "phase")
Snapshot = dict[str, Any]


@dataclass(frozen=True)
class Layout:
    """Static facts of a scenario that the features need."""

    pb_bytes: np.ndarray  # (J,) int64
    membership: np.ndarray  # (I, J) bool
    capacity: np.ndarray  # (N,) int64 bytes
    neighbours: np.ndarray  # (N, N) bool, no self loops
    max_degree: int  # D, padded neighbour count (action space size is 2 + D)
    mean_users: float = 1.0  # users per EN on average (K / N, static): local user-count scale
    # (J,) seconds to fetch each PB from the cloud alone (t_c + 8 b_j / r_c): a small PB's fetch
    # is mostly latency, a large one's mostly transfer; None: the default scenario's link
    fetch_s: np.ndarray | None = None

    @classmethod
    def from_view(cls, view, max_degree: int | None = None) -> "Layout":
        """The layout of a scenario, from a `delivery.simulator.PolicyView`; `max_degree` pads
        the neighbour slots to a trained actor's width (raises ValueError if too small)."""
        neighbours = np.asarray(view.neighbours, dtype=bool).copy()
        np.fill_diagonal(neighbours, False)
        degree = max(1, int(neighbours.sum(axis=1).max()))
        if max_degree is not None and degree > max_degree:
            raise ValueError(f"scenario has ENs with {degree} neighbours, the actor was trained for {max_degree}")
        return cls(
            pb_bytes=np.asarray(view.pb_bytes, dtype=np.int64),
            membership=np.asarray(view.membership, dtype=bool),
            capacity=np.asarray(view.capacity_bytes, dtype=np.int64),
            neighbours=neighbours,
            max_degree=max_degree or degree,
            mean_users=float(np.sum(view.users_per_node)) / max(len(view.capacity_bytes), 1),
            fetch_s=cloud_fetch_s(np.asarray(view.pb_bytes), view.config),
        )

    def fetch_times(self) -> np.ndarray:
        """(J,) cloud fetch seconds of each PB (`fetch_s`, or the default scenario's link)."""
        return cloud_fetch_s(self.pb_bytes, None) if self.fetch_s is None else self.fetch_s

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
        fits = self.pb_bytes[None, :] <= self.capacity[:, None]  # (N, J)
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


def cloud_fetch_s(pb_bytes: np.ndarray, config) -> np.ndarray:
    """(J,) t_c + 8 b_j / r_c of the scenario's cloud link (the default scenario's if None)."""
    cfg = config if config is not None else ScenarioConfig()
    return cfg.cloud_latency_s + 8.0 * np.asarray(pb_bytes, dtype=np.float64) / cfg.cloud_bps


def request_share(requests_per_node: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Per-EN share of users requesting each model: counts (..., N, I) / users (..., N)."""
    return requests_per_node / np.maximum(users, 1)[..., None]


def ema_update(ema: np.ndarray, last: np.ndarray, alpha: float) -> np.ndarray:
    """Moving average of request shares; an EN that has seen nothing yet starts from `last`."""
    fresh = ema.sum(axis=-1, keepdims=True) <= 0.0
    return np.where(fresh, last, (1.0 - alpha) * ema + alpha * last)


def day_period(config) -> int:
    """Slots per cycle of the time-of-day feature: the scenario's day if its request process has
    one, else the request-drift period (the only periodic structure of stationary demand)."""
    if config is None:
        return 10
    for name in ("day_slots", "diurnal_period", "day_period_slots"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return int(getattr(config, "drift_period", 10) or 10)


def snapshot(view, previous: Snapshot | None, alpha: float, forecast: np.ndarray | None = None) -> Snapshot:
    """The compact state of a `PolicyView` from what the view exposes (requests, placement,
    users, slot); `previous` is the previous slot's snapshot (None at the start of a run: the
    moving average starts from the last slot, a model seen before is taken as seen since slot 0).
    `forecast` (N, I): a forecast of the next slot's request shares (default: the moving
    average). No heuristic is consulted."""
    users = np.asarray(view.users_per_node, dtype=np.float64)
    last = request_share(np.asarray(view.last_requests, dtype=np.float64), users)
    raw = np.asarray(view.request_counts, dtype=np.float64)
    counts = raw + 1.0
    seen = raw > 0
    if previous is None:
        ema = last.copy()
        age = np.where(seen, float(max(view.slot - 1, 0)), UNSEEN_AGE)
    else:
        ema = ema_update(np.asarray(previous["ema"], dtype=np.float64), last, alpha)
        before = np.asarray(previous["age"], dtype=np.float64)
        age = np.where(before < UNSEEN_AGE, before + 1.0, np.where(seen, 0.0, UNSEEN_AGE))
    period = day_period(view.config)
    return {
        "placement": np.asarray(view.placement, dtype=bool).copy(),
        "ema": ema,
        "last": last,
        "cum": counts / counts.sum(axis=1, keepdims=True),
        "forecast": ema.copy() if forecast is None else np.asarray(forecast, dtype=np.float64),
        "age": age,
        "users": users,
        "phase": np.float64((view.slot % period) / period),
    }


def observe(layout: Layout, snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Per-agent observations (..., N, J, F_own + D * F_nb) and global state (..., J, F_state).

    Row n of the observations is built from EN n's own row of the snapshot, the rows of its
    neighbours and static facts only (sizes, membership, capacities, K / N), so an agent acts on
    local inputs. The state (critic only) may aggregate over all ENs."""
    member = layout.membership.astype(np.float64)
    sizes = layout.pb_bytes.astype(np.float64)
    mean_size = max(sizes.mean(), 1.0)
    total = max(sizes.sum(), 1.0)
    p = np.asarray(snap["placement"]).astype(np.float64)  # (..., N, J)
    users = np.asarray(snap["users"], dtype=np.float64)
    demand = np.asarray(snap["ema"], dtype=np.float64) @ member  # (..., N, J) share of users needing j
    demand_last = np.asarray(snap["last"], dtype=np.float64) @ member
    demand_cum = np.asarray(snap["cum"], dtype=np.float64) @ member
    forecast = np.asarray(snap["forecast"], dtype=np.float64) @ member
    young = np.exp(-np.asarray(snap["age"], dtype=np.float64) / NEW_MODEL_SLOTS)  # (..., N, I)
    novelty = np.minimum((np.asarray(snap["cum"], dtype=np.float64) * young) @ member * 10.0, 1.0)
    trend = demand_last - demand
    phase = np.asarray(snap["phase"], dtype=np.float64)
    rel_users = users / max(layout.mean_users, 1e-9)  # local: own users over the static K / N
    size_rel = np.log(np.maximum(sizes, 1.0) / mean_size)  # (J,)
    # log scale: a PB's worth is a product (demand x fetch time) over a ratio (its bytes), and
    # sizes span 5 orders of magnitude (hub-catalogue: 79 % of PBs under a tenth of the mean),
    # so in logs the worth per byte is a sum an actor's first layer can form
    fetch = layout.fetch_times()
    log_demand = np.log(demand_cum + LOG_FLOOR)
    log_forecast = np.log(np.maximum(forecast, 0.0) + LOG_FLOOR)
    log_fetch = np.log(fetch / max(float(fetch.mean()), 1e-12))  # (J,)
    cap_rel = layout.capacity / total  # (N,)
    shared_by = member.mean(axis=0)  # (J,) sharing degree
    batch = p.shape[:-2]
    n, j = layout.n_nodes, layout.n_pbs

    def bcast(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, batch + (n, j))

    angle = 2.0 * np.pi * phase[..., None, None]
    own = np.stack(
        [
            p,
            bcast(size_rel[None, :]),
            bcast(cap_rel[:, None]),
            demand,
            demand_last,
            demand_cum,
            log_demand,
            log_forecast,
            bcast(log_fetch[None, :]),
            bcast(rel_users[..., :, None]),
            bcast(shared_by[None, :]),
            trend,
            forecast,
            novelty,
            bcast(np.sin(angle)),
            bcast(np.cos(angle)),
        ],
        axis=-1,
    )
    idx, valid = layout.neighbour_index()
    v = valid[:, :, None].astype(np.float64)  # (N, D, 1)
    nb = np.stack(
        [
            p[..., idx, :] * v,
            demand[..., idx, :] * v,
            demand_cum[..., idx, :] * v,
            trend[..., idx, :] * v,
            forecast[..., idx, :] * v,
            np.broadcast_to(rel_users[..., idx, None], batch + idx.shape + (j,)) * v,
            np.broadcast_to(v, batch + idx.shape + (j,)),
        ],
        axis=-1,
    )  # (..., N, D, J, F_nb)
    nb = np.moveaxis(nb, -3, -2).reshape(batch + (n, j, layout.max_degree * NEIGHBOUR_FEATURES))
    obs = np.concatenate([own, nb], axis=-1).astype(np.float32)

    weight = rel_users[..., :, None] / n  # user-weighted node average
    covered = (demand_cum * p * weight).sum(axis=-2) / np.maximum((demand_cum * weight).sum(axis=-2), 1e-9)
    state = np.stack(
        [
            p.mean(axis=-2),
            demand.mean(axis=-2),
            demand.max(axis=-2),
            demand_cum.mean(axis=-2),
            covered,
            np.broadcast_to(size_rel, batch + (j,)),
            np.broadcast_to(shared_by, batch + (j,)),
            np.broadcast_to(cap_rel.mean(), batch + (j,)),
            trend.mean(axis=-2),
            forecast.mean(axis=-2),
            novelty.mean(axis=-2),
        ],
        axis=-1,
    ).astype(np.float32)
    return obs, state


def place(
    layout: Layout,
    actions: np.ndarray,
    scores: np.ndarray,
    previous: np.ndarray,
    keep_bias: float,
    ask_bonus: float = ASK_BONUS,
) -> np.ndarray:
    """A feasible placement (N, J) bool that fills every cache from the actor's scores.

    Each EN ranks all PBs by score (the actor's cache-vs-drop logit margin), plus `keep_bias` for
    PBs it already holds (hysteresis: a near-tie does not reload a PB) and ASK_BONUS for every
    neighbour that asks it to hold the PB; it admits PBs in that order while they fit, so the
    capacity is used as far as the PB sizes allow. Masked/invalid codes count as drop.
    `ask_bonus` 0: the scores already hold what the asks are worth (the value learner's).
    """
    n_nodes, n_pbs = layout.n_nodes, layout.n_pbs
    idx, valid = layout.neighbour_index()
    score = np.asarray(scores, dtype=np.float64) + keep_bias * np.asarray(previous, dtype=bool)
    if ask_bonus:
        for d in range(layout.max_degree):
            asked = (actions == PULL0 + d) & valid[:, d : d + 1]
            for n in np.flatnonzero(valid[:, d]):
                score[idx[n, d]] += ask_bonus * asked[n]
    placement = np.zeros((n_nodes, n_pbs), dtype=bool)
    for n in range(n_nodes):
        order = np.lexsort((np.arange(n_pbs), -score[n]))  # stable: ties by PB index
        placement[n] = fill_in_order(order, layout.pb_bytes, int(layout.capacity[n]))
    return placement


def effective_actions(layout: Layout, actions: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """The actions the placement carried out (..., N, J): "cache" wherever the PB was placed,
    a "pull from d" where it was not placed here but neighbour d holds it, else "drop". The
    critic learns from these, so its inputs describe the placement the reward came from."""
    idx, valid = layout.neighbour_index()
    out = np.where(placement, CACHE, np.where(actions == CACHE, DROP, actions))
    for d in range(layout.max_degree):
        holds = placement[..., idx[:, d], :] & valid[:, d : d + 1]
        out = np.where((out == PULL0 + d) & ~holds, DROP, out)
    return out.astype(np.int8)
