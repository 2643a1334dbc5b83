"""The expected-delay proxy that the greedy and the optimal placement minimise.

    D(X) = sum_n sum_j w_nj * t_nj(X)
    w_nj = sum_i d_ni * [j in B_i]          expected requests per slot at EN n that need PB j
    t_nj = 0                     if x_nj = 1                      (cached at the home EN)
         = 8 s_j / r_bh          if some other EN caches j         (migration, not in noncoop)
         = t_c + 8 s_j / r_c     otherwise                         (cloud)

It is the total preparation time users' PBs would need if every fetch ran on its own: the
airtime does not depend on the placement in this proxy, and the sum (not max) over a model's
PBs reflects that one EN's fetches queue on its links one after another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from delivery.config import ScenarioConfig
from delivery.modes import cooperative


@dataclass(frozen=True)
class ProxyInstance:
    weight: np.ndarray  # (N, J) w_nj
    t_backhaul: np.ndarray  # (J,)
    t_cloud: np.ndarray  # (J,)
    pb_bytes: np.ndarray  # (J,)
    capacity: np.ndarray  # (N,)
    migrate: bool  # False in noncoop mode


def demand_estimate(view, prior: float = 1.0) -> np.ndarray:
    """(N, I) expected requests per slot of each model at each EN: users of the EN times the
    EN's observed request shares, Laplace-smoothed by `prior` so unseen models keep some mass."""
    counts = view.request_counts.astype(float) + prior
    share = counts / counts.sum(axis=1, keepdims=True)
    return view.users_per_node[:, None] * share


def proxy_instance(view, prior: float = 1.0) -> ProxyInstance:
    cfg = view.config if view.config is not None else ScenarioConfig()
    sizes = view.pb_bytes.astype(float)
    return ProxyInstance(
        weight=demand_estimate(view, prior) @ view.membership.astype(float),
        t_backhaul=8 * sizes / cfg.backhaul_bps,
        t_cloud=cfg.cloud_latency_s + 8 * sizes / cfg.cloud_bps,
        pb_bytes=view.pb_bytes,
        capacity=view.capacity_bytes,
        migrate=cooperative(view.mode),
    )


def proxy_cost(inst: ProxyInstance, placement: np.ndarray) -> float:
    x = np.asarray(placement, dtype=bool)
    anywhere = x.any(axis=0)
    remote = np.where(anywhere & inst.migrate, inst.t_backhaul, inst.t_cloud)
    t = np.where(x, 0.0, remote[None, :])
    return float((inst.weight * t).sum())
