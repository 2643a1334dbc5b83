"""Normalised units for the solvers: channels in units of the noise and the largest budget.

Physical channels are ~1e-6 in amplitude and the noise ~1e-12 W; a conic solver fed those numbers
stalls on its absolute tolerances. With g_k = h_k sqrt(P_max / noise) / sqrt(c) and p = P / P_max,
SNR_k = c |g_k^H v|^2 for v = w / sqrt(P_max), where c (the mean single-user optimum SNR of the
group) makes the solver's objective O(1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScaledProblem:
    g: np.ndarray  # (K, N*L) complex normalised channels (stacked over nodes)
    p: np.ndarray  # (N,) budgets divided by the largest one
    p_max: float  # watts
    snr_unit: float  # linear SNR of a normalised objective value of 1
    n_nodes: int
    n_antennas: int

    def to_watts(self, v: np.ndarray) -> np.ndarray:
        """Normalised stacked beamformer (N*L,) -> physical (N, L)."""
        return np.asarray(v).reshape(self.n_nodes, self.n_antennas) * np.sqrt(self.p_max)

    def eps_abs(self, eps: float) -> np.ndarray:
        """Per-user absolute error radius eps ||g_k|| in normalised units."""
        return eps * np.linalg.norm(self.g, axis=1)


def scale_problem(h: np.ndarray, power: np.ndarray, noise: float) -> ScaledProblem:
    k, n_nodes, n_ant = h.shape
    p_max = float(np.max(power))
    p = power / p_max
    g = h.reshape(k, -1) * np.sqrt(p_max / noise)
    node_norms = np.linalg.norm(g.reshape(k, n_nodes, n_ant), axis=2)  # (K, N)
    single_user = (node_norms @ np.sqrt(p)) ** 2
    c = float(np.mean(single_user))
    if not c > 0:
        c = 1.0  # all-zero channels: nothing to normalise
    return ScaledProblem(g=g / np.sqrt(c), p=p, p_max=p_max, snr_unit=c, n_nodes=n_nodes, n_antennas=n_ant)
