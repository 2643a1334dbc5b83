"""Caching policies: one interface for the baselines and for anything `learning` registers.

A policy sees a `PolicyView` (before the slot's requests) and returns a feasible (N, J) bool
placement under the view's storage accounting (`view.mode`; what a mode changes is asked of
delivery.modes). A policy may carry a `mode` attribute ("coarse", "coarse-storage",
"coarse-delivery", "noncoop"): the delivery mode it is the baseline for; the CLI runs it in
that mode. What each policy does is documented in docs/system-model.md, "Policies".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np

from delivery.forecast import EMACounts, HoltForecaster
from delivery.modes import places_models
from delivery.optimal import solve_milp
from delivery.proxy import ProxyInstance, demand_estimate, proxy_instance
from delivery.registry import make_policy, policy_names, register_policy
from delivery.storage import fill_in_order, fill_models, project_scores


@runtime_checkable
class Policy(Protocol):
    name: str

    def place(self, view: Any, rng: np.random.Generator) -> np.ndarray: ...


def _pb_popularity(counts: np.ndarray, membership: np.ndarray, prior: float = 1.0) -> np.ndarray:
    """Popularity of each PB: summed (smoothed) request counts of the models containing it."""
    return (counts.astype(float) + prior) @ membership.astype(float)


def _fill_by_rank(view, scores: np.ndarray) -> np.ndarray:
    """Per EN, take PBs (or whole models where the mode places models) in descending score order."""
    n_nodes = len(view.capacity_bytes)
    out = np.zeros((n_nodes, len(view.pb_bytes)), dtype=bool)
    for n in range(n_nodes):
        if places_models(view.mode):
            model_score = scores[n] if scores.shape[1] == view.membership.shape[0] else None
            if model_score is None:
                raise ValueError(f"{view.mode} ranking needs per-model scores")
            out[n] = fill_models(
                np.argsort(-model_score, kind="stable"),
                view.membership,
                view.pb_bytes,
                int(view.capacity_bytes[n]),
                view.mode,
            )
        else:
            out[n] = fill_in_order(np.argsort(-scores[n], kind="stable"), view.pb_bytes, int(view.capacity_bytes[n]))
    return out


class RandomPolicy:
    """Uniformly random order, filled first-fit (whole models where the mode places models)."""

    name = "random"
    mode: str | None = None

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        n_nodes = len(view.capacity_bytes)
        width = view.membership.shape[0] if places_models(view.mode) else len(view.pb_bytes)
        return _fill_by_rank(view, rng.uniform(size=(n_nodes, width)))


class PopularPolicy:
    """Most-popular PBs network-wide (counts summed over ENs): every EN caches the same set."""

    name = "popular"
    mode: str | None = None

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        total = view.request_counts.sum(axis=0, keepdims=True)
        n_nodes = len(view.capacity_bytes)
        if places_models(view.mode):
            return _fill_by_rank(view, np.repeat(total.astype(float), n_nodes, axis=0))
        pop = _pb_popularity(total, view.membership)
        return _fill_by_rank(view, np.repeat(pop, n_nodes, axis=0))


class LFUPolicy:
    """Least-frequently-used from each EN's own observed counts: keep its most requested PBs."""

    name = "lfu"
    mode: str | None = None

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        if places_models(view.mode):
            return _fill_by_rank(view, view.request_counts.astype(float))
        return _fill_by_rank(view, _pb_popularity(view.request_counts, view.membership))


class CoarsePolicy:
    """Coarse-grained baseline: whole models by local popularity, each stored as its own copy."""

    name = "coarse"
    mode: str | None = "coarse"

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        counts = view.request_counts.astype(float) + 1.0
        out = np.zeros((len(view.capacity_bytes), len(view.pb_bytes)), dtype=bool)
        for n in range(len(view.capacity_bytes)):
            out[n] = fill_models(
                np.argsort(-counts[n], kind="stable"),
                view.membership,
                view.pb_bytes,
                int(view.capacity_bytes[n]),
                view.mode,
            )
        return out


class CoarseStoragePolicy(CoarsePolicy):
    """The coarse baseline's placement (whole models by local popularity, each its own copy),
    delivered by PB with shared PBs broadcast: the storage half of coarse."""

    name = "coarse-storage"
    mode: str | None = "coarse-storage"


class CoarseDeliveryPolicy(CoarsePolicy):
    """Whole models by local popularity stored PB-deduplicated (a PB shared with a model already
    held costs nothing), each requested model sent as one unit: the delivery half of coarse."""

    name = "coarse-delivery"
    mode: str | None = "coarse-delivery"


class NoncoopPolicy:
    """Non-cooperative baseline: each EN fills its cache for its own users only, by local
    PB popularity per byte, ignoring what its neighbours hold (run in noncoop mode)."""

    name = "noncoop"
    mode: str | None = "noncoop"

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        scores = _pb_popularity(view.request_counts, view.membership)
        return project_scores(scores, view.pb_bytes, view.capacity_bytes, view.membership, view.mode)


def greedy_proxy(inst: ProxyInstance) -> np.ndarray:
    """Marginal proxy-delay reduction per byte, TrimCaching style, recomputed lazily per PB.

    Adding x_nj saves w_nj * t_nj at EN n and, when no EN held j before, turns the other
    ENs' cloud fetches of j into migrations: sum_{m != n, x_mj = 0} w_mj (t_cloud - t_bh).
    """
    w = inst.weight
    n_nodes, n_pbs = w.shape
    x = np.zeros((n_nodes, n_pbs), dtype=bool)
    left = inst.capacity.astype(np.int64).copy()
    sizes = inst.pb_bytes.astype(np.int64)

    def column_gain(j: int) -> np.ndarray:
        held = x[:, j].any()
        remote = inst.t_backhaul[j] if (held and inst.migrate) else inst.t_cloud[j]
        own = w[:, j] * remote
        spill = 0.0
        if not held and inst.migrate:
            saving = w[:, j] * (inst.t_cloud[j] - inst.t_backhaul[j])
            spill = saving.sum() - saving  # every other EN's saving
        return np.where(x[:, j], -np.inf, own + spill)

    gain = np.stack([column_gain(j) for j in range(n_pbs)], axis=1)
    per_byte = np.where(sizes > 0, 1.0 / np.maximum(sizes, 1), 1e300)
    while True:
        density = gain * per_byte[None, :]
        density[sizes[None, :] > left[:, None]] = -np.inf
        density[gain <= 0] = -np.inf
        flat = int(np.argmax(density))
        n, j = divmod(flat, n_pbs)
        if not np.isfinite(density[n, j]):
            return x
        x[n, j] = True
        left[n] -= sizes[j]
        gain[:, j] = column_gain(j)


class GreedyPolicy:
    """TrimCaching-style PB-aware greedy on the expected-delay proxy (delivery.proxy)."""

    name = "greedy"
    mode: str | None = None

    def __init__(self, prior: float = 1.0) -> None:
        self.prior = prior

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        x = greedy_proxy(proxy_instance(view, self.prior))
        return _as_mode(view, x)


class OptimalPolicy:
    """Exact minimum of the expected-delay proxy (MILP, HiGHS); see delivery.optimal."""

    name = "optimal"
    mode: str | None = None

    def __init__(self, prior: float = 1.0, time_limit_s: float = 5.0, rel_gap: float = 1e-4) -> None:
        self.prior = prior
        self.time_limit_s = time_limit_s
        self.rel_gap = rel_gap
        self.last_status = ""
        self.last_gap = 0.0  # proven: proxy(placement) - optimum <= last_gap

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        sol = solve_milp(proxy_instance(view, self.prior), self.time_limit_s, self.rel_gap)
        self.last_status = sol.status
        self.last_gap = sol.cost - sol.bound
        return _as_mode(view, sol.placement)


def _as_mode(view, x: np.ndarray) -> np.ndarray:
    """A PB placement made for fine accounting, turned into whole models (scored by their chosen
    PBs, filled under the mode's accounting) where the mode places models."""
    if not places_models(view.mode):
        return x
    return project_scores(x.astype(float), view.pb_bytes, view.capacity_bytes, view.membership, view.mode)


def greedy_on_demand(view, demand: np.ndarray) -> np.ndarray:
    """The greedy placement (`greedy_proxy`) for a given (N, I) expected demand per slot."""
    inst = dataclasses.replace(proxy_instance(view), weight=np.asarray(demand, float) @ view.membership.astype(float))
    return _as_mode(view, greedy_proxy(inst))


def _shares_times_users(view, counts: np.ndarray | None, prior: float) -> np.ndarray:
    """(N, I) expected requests: users of each EN times its (smoothed) share of `counts`."""
    c = (np.zeros(view.request_counts.shape) if counts is None else np.asarray(counts, float)) + prior
    return view.users_per_node[:, None] * c / c.sum(axis=1, keepdims=True)


class LRUPolicy:
    """Least-recently-used: each EN keeps the PBs of its most recently requested models
    (recency of the last slot a model containing the PB was requested there), ties by counts."""

    name = "lru"
    mode: str | None = None

    def __init__(self) -> None:
        self.last_used: np.ndarray | None = None  # (N, I) last slot each model was requested

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        if self.last_used is None:
            self.last_used = np.full(view.request_counts.shape, -1.0)
        if view.slot > 0:
            self.last_used[view.last_requests > 0] = view.slot - 1
        counts = view.request_counts.astype(float)
        model_score = self.last_used + counts / (counts.sum(axis=1, keepdims=True) + 1.0)  # ties by counts
        if places_models(view.mode):
            return _fill_by_rank(view, model_score)
        # a PB is as recent as the most recent model that needs it
        member = view.membership.astype(bool)
        pb_score = np.where(member[None, :, :], model_score[:, :, None], -np.inf).max(axis=1)
        return _fill_by_rank(view, pb_score)


class GreedyEMAPolicy:
    """Greedy on recency-weighted counts: per-slot counts smoothed with weight `alpha` (0.3:
    about 3 slots of memory), so recent requests count more than old ones."""

    name = "greedy-ema"
    mode: str | None = None

    def __init__(self, alpha: float = 0.3, prior: float = 0.1) -> None:
        self.ema = EMACounts(alpha)
        self.prior = prior

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        if view.slot > 0:
            self.ema.update(view.last_requests)
        return greedy_on_demand(view, _shares_times_users(view, self.ema.value, self.prior))


class GreedyForecastPolicy:
    """Greedy on a forecast of the slot the placement serves: Holt's trend (delivery.forecast)
    over each EN's per-slot counts, 2 slots ahead of the last counts seen."""

    name = "greedy-forecast"
    mode: str | None = None

    def __init__(self, alpha: float = 0.5, beta: float = 0.3, prior: float = 0.1) -> None:
        self.holt = HoltForecaster(alpha, beta)
        self.prior = prior

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        if view.slot > 0:
            self.holt.update(view.last_requests)
        return greedy_on_demand(view, _shares_times_users(view, self.holt.forecast(2), self.prior))


# One registry of names for every command: delivery/registry.py.
__all__ = [
    "Policy",
    "make_policy",
    "register_policy",
    "policy_names",
    "demand_estimate",
    "greedy_on_demand",
]
