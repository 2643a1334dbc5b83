"""Fast max-min multicast beamformer in numpy only (no conic solver), for learning loops.

Each iteration weights the users by a soft minimum of their SNRs, pi = softmax(-s / mu), and
takes the conditional-gradient step of the weighted sum of SNRs over the per-node power balls:
    d = sum_k pi_k g_k (g_k^H v),   v_n <- sqrt(p_n) d_n / ||d_n||.
For fixed weights this step never decreases sum_k pi_k |g_k^H v|^2 (it maximises the convex
function's linearisation over the feasible set), so it is a power method; the temperature mu
is annealed from a fraction of the mean SNR down so the weights concentrate on the weakest users.
Several starts run at once (MRT, the dominant eigenvector of sum_k g_k g_k^H / ||g_k||^2, and
random ones from the caller's rng); the best min SNR seen over all iterates is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .closed_form import mrt
from .result import per_node_full_power
from .scaling import ScaledProblem


@dataclass(frozen=True)
class FastSettings:
    iterations: int = 40
    random_starts: int = 2
    temp_start: float = 0.3  # mu / mean SNR at the first step
    temp_end: float = 0.005  # ... and at the last


def design_fast(sp: ScaledProblem, rng: np.random.Generator, settings: FastSettings = FastSettings()) -> tuple[np.ndarray, float, int]:
    """Return (normalised stacked beamformer, normalised min SNR, iterations)."""
    g = sp.g
    k, n = g.shape
    shape = (sp.n_nodes, sp.n_antennas)
    norms = np.linalg.norm(g, axis=1)
    gn = g[norms > 0] / norms[norms > 0, None]
    starts = [mrt(g.reshape(k, *shape), sp.p).reshape(-1)]
    if gn.shape[0] > 1:
        _, vecs = np.linalg.eigh(gn.T @ gn.conj())  # sum_k g_k g_k^H (normalised users)
        starts.append(vecs[:, -1])
    if settings.random_starts > 0:
        z = rng.standard_normal((settings.random_starts, n)) + 1j * rng.standard_normal((settings.random_starts, n))
        starts.extend(z)
    V = per_node_full_power(np.asarray(starts).reshape(-1, *shape), sp.p).reshape(-1, n)

    def objective(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = V @ g.conj().T  # (S, K): g_k^H v
        return a, np.abs(a) ** 2

    a, s = objective(V)
    best_val = s.min(axis=1)
    best_v = V.copy()
    temps = np.geomspace(settings.temp_start, settings.temp_end, settings.iterations)
    for temp in temps:
        mu = temp * np.maximum(s.mean(axis=1, keepdims=True), 1e-300)
        logits = -(s - s.min(axis=1, keepdims=True)) / mu
        pi = np.exp(logits)
        pi /= pi.sum(axis=1, keepdims=True)
        d = (pi * a) @ g  # (S, n): sum_k pi_k g_k (g_k^H v)
        V = per_node_full_power(d.reshape(-1, *shape), sp.p).reshape(-1, n)
        a, s = objective(V)
        val = s.min(axis=1)
        better = val > best_val
        best_val = np.where(better, val, best_val)
        best_v[better] = V[better]
    i = int(np.argmax(best_val))
    return best_v[i], float(best_val[i]), settings.iterations
