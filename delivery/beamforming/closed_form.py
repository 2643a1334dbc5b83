"""Closed-form beamformers: MRT toward a group, and the exact single-user optima.

Single user, per-node budgets, perfect CSI: every node beams along its own channel at full
power, w_n = sqrt(P_n) h_n / ||h_n||, giving SNR = (sum_n sqrt(P_n) ||h_n||)^2 / noise (by
Cauchy-Schwarz per node and the triangle inequality across nodes).

Single user, worst case over ||e|| <= eps ||h||: the worst-case gain of w is
|h^H w| - eps ||h|| ||w||. For node amplitudes a_n = ||w_n|| it is maximised by aligning every
w_n with h_n, leaving the concave problem  max_a  sum_n a_n ||h_n|| - eps ||h|| ||a||  over
0 <= a_n <= sqrt(P_n). Its KKT point is a_n = min(sqrt(P_n), ||h_n|| r) with r the unique root of
||a(r)|| = eps ||h|| r; a weak node may transmit below its budget because its power widens the
error ball more than it adds gain.
"""

from __future__ import annotations

import numpy as np


def mrt(h: np.ndarray, power: np.ndarray) -> np.ndarray:
    """MRT toward the group: v = sum_k h_k / ||h_k||, each node's block scaled to its full budget.

    Users are normalised first so a strong user does not take the whole beam. For one user this
    is exactly the single-user optimum.
    """
    k, n_nodes, n_ant = h.shape
    flat = h.reshape(k, -1)
    norms = np.linalg.norm(flat, axis=1)
    active = norms > 0
    if not np.any(active):
        return np.zeros((n_nodes, n_ant), dtype=np.complex128)
    v = (flat[active] / norms[active, None]).sum(axis=0).reshape(n_nodes, n_ant)
    # A node whose users' directions cancel exactly falls back to its strongest user's channel.
    block_norms = np.linalg.norm(v, axis=1)
    strongest = h[np.argmax(norms)]
    v = np.where((block_norms > 1e-12 * max(block_norms.max(), 1e-300))[:, None], v, strongest)
    norms_v = np.linalg.norm(v, axis=1, keepdims=True)
    return np.where(norms_v > 0, v * np.sqrt(power)[:, None] / np.where(norms_v > 0, norms_v, 1.0), 0.0)


def single_user_amplitudes(node_gains: np.ndarray, power: np.ndarray, eps: float) -> np.ndarray:
    """Optimal per-node amplitudes a_n for one user (see module docstring); node_gains = ||h_n||."""
    s = np.sqrt(power)
    c = np.asarray(node_gains, dtype=np.float64)
    e = eps * float(np.linalg.norm(c))
    if e == 0.0:
        return np.where(c > 0, s, 0.0)
    pos = c > 0
    if not np.any(pos):
        return np.zeros_like(s)

    def excess(r: float) -> float:  # ||a(r)|| / r - e, strictly decreasing once any node saturates
        return float(np.linalg.norm(np.minimum(s, c * r))) / r - e

    r_sat = float(np.max(s[pos] / c[pos]))  # beyond this every transmitting node is saturated
    if excess(r_sat) >= 0.0:
        return np.where(pos, s, 0.0)
    lo, hi = 0.0, r_sat  # excess(0+) = ||c|| (1 - eps) > 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if excess(mid) > 0.0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return np.minimum(s, c * hi)


def single_user(h_user: np.ndarray, power: np.ndarray, noise: float, eps: float = 0.0) -> tuple[np.ndarray, float]:
    """Optimal beamformer (N, L) and its guaranteed (worst-case when eps > 0) SNR for one user."""
    node_gains = np.linalg.norm(h_user, axis=1)
    a = single_user_amplitudes(node_gains, power, eps)
    safe = np.where(node_gains > 0, node_gains, 1.0)
    w = h_user * (a / safe)[:, None]
    gain = float(a @ node_gains) - eps * float(np.linalg.norm(node_gains)) * float(np.linalg.norm(a))
    return w, max(0.0, gain) ** 2 / noise
