"""Fast max-min multicast beamformer in numpy only (no conic solver), for learning loops.

Successive convex approximation (SCA). At the current v, every user's SNR s_k = |g_k^H v|^2 is
bounded below by its linearisation (a convex function lies above its tangent):
    s_k(x) >= 2 Re(conj(a_k) g_k^H x) - |a_k|^2,   a_k = g_k^H v,  with equality at x = v.
Maximising the smallest of these affine bounds over the per-node balls ||x_n||^2 <= p_n is a
convex problem; its Lagrange dual over user weights pi (a probability vector) is
    min_pi  2 sum_n sqrt(p_n) ||d_n(pi)|| - sum_k pi_k |a_k|^2,   d(pi) = sum_k pi_k a_k g_k,
whose maximiser for given pi is x_n = sqrt(p_n) d_n / ||d_n|| and whose gradient in pi_k is the
k-th linearised SNR at that x. A few exponentiated-gradient (mirror-descent) steps on pi, averaged,
give the next iterate. Starts: MRT and the dominant eigenvector of sum_k g_k g_k^H / ||g_k||^2
(plus optional random ones from the caller's rng); the best true min SNR over all iterates is kept.
Measured distance from sdr: docs/beamforming.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .closed_form import mrt
from .result import per_node_full_power
from .scaling import ScaledProblem


@dataclass(frozen=True)
class FastSettings:
    outer: int = 20  # SCA steps
    inner: int = 5  # mirror-descent steps on the dual weights per SCA step
    step: float = 1.0  # mirror-descent step, in units of the mean SNR
    random_starts: int = 0  # extra random starts drawn from the rng


def design_fast(sp: ScaledProblem, rng: np.random.Generator, settings: FastSettings = FastSettings()) -> tuple[np.ndarray, float, int]:
    """Return (normalised stacked beamformer, normalised min SNR, SCA steps)."""
    g = sp.g
    k, n = g.shape
    shape = (sp.n_nodes, sp.n_antennas)

    def project(d: np.ndarray) -> np.ndarray:  # argmax of a linear function over the node balls
        return per_node_full_power(d.reshape(-1, *shape), sp.p).reshape(-1, n)

    norms = np.linalg.norm(g, axis=1)
    starts = [mrt(g.reshape(k, *shape), sp.p).reshape(-1)]
    if k > 1 and np.any(norms > 0):
        gn = g[norms > 0] / norms[norms > 0, None]
        starts.append(np.linalg.eigh(gn.T @ gn.conj())[1][:, -1])  # dominant direction of sum g g^H
    if settings.random_starts > 0:
        shape_r = (settings.random_starts, n)
        starts.extend(rng.standard_normal(shape_r) + 1j * rng.standard_normal(shape_r))
    V = project(np.asarray(starts))
    a = V @ g.conj().T  # (S, K): g_k^H v
    s = np.abs(a) ** 2
    best_val = s.min(axis=1)
    best_v = V.copy()
    pi = np.full((V.shape[0], k), 1.0 / k)
    for _ in range(settings.outer):
        scale = np.maximum(s.mean(axis=1, keepdims=True), 1e-300)
        avg = np.zeros_like(pi)
        for _ in range(settings.inner):
            x = project((pi * a) @ g)
            lin = 2.0 * np.real(a * np.conj(x @ g.conj().T)) - s  # dual gradient
            pi = pi * np.exp(-settings.step * (lin - lin.min(axis=1, keepdims=True)) / scale)
            pi /= pi.sum(axis=1, keepdims=True)
            avg += pi
        V = project((avg / settings.inner * a) @ g)
        a = V @ g.conj().T
        s = np.abs(a) ** 2
        val = s.min(axis=1)
        better = val > best_val
        best_val = np.where(better, val, best_val)
        best_v[better] = V[better]
    i = int(np.argmax(best_val))
    return best_v[i], float(best_val[i]), settings.outer
