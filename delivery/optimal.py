"""The limit: the exact minimum of the expected-delay proxy, and enumeration for tiny checks.

"Optimal" here means optimal for the proxy of delivery.proxy (the objective the greedy also
uses), under the per-EN capacities, solved exactly as a mixed-integer program with HiGHS
(scipy.optimize.milp). It is not a claim about the simulated delay; for that the simulator
reports `delay_lower_bound_s`, a bound no placement can beat (docs/system-model.md, "Limits").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, hstack, identity, vstack

from delivery.errors import ConfigError
from delivery.proxy import ProxyInstance, proxy_cost


@dataclass(frozen=True)
class ProxySolution:
    placement: np.ndarray
    cost: float
    bound: float  # proven lower bound on the proxy optimum (= cost when status optimal)
    status: str


def solve_milp(inst: ProxyInstance, time_limit_s: float = 60.0, rel_gap: float = 1e-4) -> ProxySolution:
    """min D(X) over x binary (N*J), u, v in [0, 1] (served by migration / by the cloud).

    x_nj + u_nj + v_nj >= 1 where w_nj > 0;  u_nj <= sum_{m != n} x_mj  (another EN holds j);
    sum_j s_j x_nj <= C_n. With x integral the LP optimum of u and v is integral, so only x is
    declared integer. HiGHS stops when the gap to its proven bound is below rel_gap.
    """
    n, j = inst.weight.shape
    nj = n * j
    w = inst.weight.reshape(-1)
    c = np.concatenate(
        [
            np.zeros(nj),
            (inst.weight * inst.t_backhaul[None, :]).reshape(-1),
            (inst.weight * inst.t_cloud[None, :]).reshape(-1),
        ]
    )
    eye = identity(nj, format="csr")
    rows = np.nonzero(w > 0)[0]
    cover = hstack([eye, eye, eye]).tocsr()[rows]
    # u_nj - sum_{m != n} x_mj <= 0: row (n, j) has -1 on x_mj for every m != n
    node_of = np.repeat(np.arange(n), j)
    col_of = np.tile(np.arange(j), n)
    r_idx, c_idx = [], []
    for m in range(n):
        others = np.nonzero(node_of != m)[0]  # cells (n', j') with n' != m
        r_idx.append(others)  # row (n', j') ...
        c_idx.append(m * j + col_of[others])  # ... gets x_{m, j'}
    others_x = coo_matrix(
        (-np.ones(sum(len(r) for r in r_idx)), (np.concatenate(r_idx), np.concatenate(c_idx))), shape=(nj, nj)
    )
    link = hstack([others_x, eye, coo_matrix((nj, nj))])
    # capacity, scaled by C_n so every row is O(1)
    cap_rows = coo_matrix((np.tile(inst.pb_bytes, n) / inst.capacity[node_of], (node_of, np.arange(nj))), shape=(n, nj))
    cap = hstack([cap_rows, coo_matrix((n, 2 * nj))])
    a = vstack([cover, link, cap]).tocsr()
    lo = np.concatenate([np.ones(len(rows)), np.full(nj, -np.inf), np.full(n, -np.inf)])
    hi = np.concatenate([np.full(len(rows), np.inf), np.zeros(nj), np.ones(n)])
    upper = np.ones(3 * nj)
    if not inst.migrate:
        upper[nj : 2 * nj] = 0.0
    integrality = np.concatenate([np.ones(nj), np.zeros(2 * nj)])
    res = milp(
        c,
        constraints=LinearConstraint(a, lo, hi),
        integrality=integrality,
        bounds=Bounds(np.zeros(3 * nj), upper),
        options={"time_limit": time_limit_s, "mip_rel_gap": rel_gap},
    )
    if res.x is None:
        raise ConfigError(f"optimal placement: the MILP solver found no solution ({res.message})")
    x = res.x[:nj].reshape(n, j) > 0.5
    # re-check capacity in integer bytes (the scaled rows could round a hair over)
    x = _repair(x, inst)
    cost = proxy_cost(inst, x)
    bound = getattr(res, "mip_dual_bound", None)
    bound = cost if bound is None or not np.isfinite(bound) else min(float(bound), cost)
    status = "optimal" if res.status == 0 else f"time limit (gap to bound {cost - bound:.3g})"
    return ProxySolution(placement=x, cost=cost, bound=bound, status=status)


def _repair(x: np.ndarray, inst: ProxyInstance) -> np.ndarray:
    x = x.copy()
    for n in range(x.shape[0]):
        while int(inst.pb_bytes[x[n]].sum()) > int(inst.capacity[n]):
            held = np.nonzero(x[n])[0]
            x[n, held[np.argmin(inst.weight[n, held])]] = False
    return x


def enumerate_optimal(inst: ProxyInstance, max_cells: int = 16) -> ProxySolution:
    """Exhaustive search over every placement (2^(N*J) of them) for tiny instances."""
    n, j = inst.weight.shape
    if n * j > max_cells:
        raise ConfigError(f"enumeration of {n}x{j} placements is too large (limit {max_cells} cells)")
    best_x, best = None, np.inf
    for bits in itertools.product((False, True), repeat=n * j):
        x = np.array(bits).reshape(n, j)
        if (x.astype(np.int64) @ inst.pb_bytes > inst.capacity).any():
            continue
        cost = proxy_cost(inst, x)
        if cost < best:
            best_x, best = x, cost
    assert best_x is not None  # the empty placement is always feasible
    return ProxySolution(placement=best_x, cost=best, bound=best, status="optimal")
