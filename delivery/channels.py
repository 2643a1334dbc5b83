"""Per-slot small-scale fading and the CSI the edge nodes know about it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlotChannels:
    """True and estimated channels of one slot, complex (K, N, L): h_true = h_est + error.

    `h_est`/`h_true` are the small-scale fading state the slot starts in (what the scheduler
    plans with); `more_est`/`more_true` (M-1, K, N, L), when given, are the further independent
    states a long transmission passes through, one per coherence block in turn
    (docs/system-model.md, "Fading"). Large-scale gains are the same in every state.
    """

    h_est: np.ndarray
    h_true: np.ndarray
    more_est: np.ndarray | None = None
    more_true: np.ndarray | None = None

    def states(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(h_est, h_true) of every fading state, the starting one first."""
        out = [(self.h_est, self.h_true)]
        if self.more_est is not None:
            out += list(zip(self.more_est, self.more_true))
        return out


def draw_states(
    rng: np.random.Generator, gain_lin: np.ndarray, antennas: int, csi_error: float, states: int
) -> SlotChannels:
    """`states` independent small-scale fading states of one slot (each as `draw_channels`)."""
    drawn = [draw_channels(rng, gain_lin, antennas, csi_error) for _ in range(states)]
    if states == 1:
        return drawn[0]
    return SlotChannels(
        drawn[0].h_est,
        drawn[0].h_true,
        np.stack([d.h_est for d in drawn[1:]]),
        np.stack([d.h_true for d in drawn[1:]]),
    )


def draw_channels(rng: np.random.Generator, gain_lin: np.ndarray, antennas: int, csi_error: float) -> SlotChannels:
    """Rayleigh block fading h = sqrt(beta) g, g ~ CN(0, I_L): one small-scale state.

    The ENs know h_est; the true channel is h_est + e with e uniform in the ball
    ||e_kn|| <= eps ||h_est_kn|| for every user k and EN n. A per-(k, n) bound implies the same
    relative bound on the channel stacked over any serving set, which is the error set the
    robust beamformer protects against.
    """
    k, n = gain_lin.shape
    shape = (k, n, antennas)
    g = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)
    h_est = np.sqrt(gain_lin)[:, :, None] * g
    if csi_error <= 0:
        return SlotChannels(h_est=h_est, h_true=h_est)
    # uniform in the 2L-dimensional real ball: Gaussian direction, radius U^(1/2L)
    direction = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    direction /= np.linalg.norm(direction, axis=2, keepdims=True)
    radius = rng.uniform(size=(k, n, 1)) ** (1.0 / (2 * antennas))
    error = csi_error * np.linalg.norm(h_est, axis=2, keepdims=True) * radius * direction
    return SlotChannels(h_est=h_est, h_true=h_est + error)
