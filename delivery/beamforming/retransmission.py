"""Delivery of one PB group under CSI error, with the retransmission rule for failed users.

Rule (one retransmission round, documented in docs/beamforming.md):
1. The nodes design w1 on the estimated channels with the chosen method and pick the rate from
   the SNR the design guarantees: R1 = B log2(1 + min_snr) (estimated min SNR for mrt/sdr/fast,
   worst case within eps for robust).
2. User k decodes iff its true SNR |h_k^H w1|^2 / noise >= min_snr (relative slack 1e-9 for
   rounding). The others are "failed" and NACK.
3. The nodes design w2 for the failed users only, again on their estimated channels with the
   same method, and send the PB once more at the rate of the failed users' TRUE min SNR under
   w2 (the NACK round is assumed to feed back the achieved SNR, so the second attempt decodes).
   Failed users finish after both airtimes; the channel is busy for tau1 + tau2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .api import design
from .cache import BeamformerCache
from .result import BeamformingError, BeamformingResult, evaluate

DECODE_RTOL = 1e-9


def rate_bps(snr: float | np.ndarray, bandwidth: float) -> float | np.ndarray:
    """Shannon rate B log2(1 + SNR) in bit/s."""
    return bandwidth * np.log2(1.0 + np.asarray(snr, dtype=np.float64))


def airtime(bits: float, snr: float, bandwidth: float) -> float:
    """Seconds to send `bits` at the rate of `snr` (infinite when the SNR is 0)."""
    rate = float(rate_bps(snr, bandwidth))
    return bits / rate if rate > 0 else float("inf")


@dataclass(frozen=True)
class DeliveryPlan:
    first: BeamformingResult  # designed on the estimated channels of the whole group
    true_snr: np.ndarray  # (K,) true SNR of every user under first.w
    failed: np.ndarray  # (K,) bool: true SNR below the first rate's SNR
    retry: BeamformingResult | None  # designed on the estimates of the failed users
    retry_snr: float  # SNR the retransmission's rate is chosen for (nan without one)

    @property
    def rate_snr(self) -> float:
        return self.first.min_snr

    def airtimes(self, bits: float, bandwidth: float) -> tuple[float, float]:
        """(first, retransmission) airtime in seconds; the retransmission is 0 when nobody failed."""
        tau1 = airtime(bits, self.rate_snr, bandwidth)
        tau2 = airtime(bits, self.retry_snr, bandwidth) if self.retry is not None else 0.0
        return tau1, tau2

    def user_airtime(self, bits: float, bandwidth: float) -> np.ndarray:
        """(K,) seconds from the first transmission's start until each user has decoded."""
        tau1, tau2 = self.airtimes(bits, bandwidth)
        return np.where(self.failed, tau1 + tau2, tau1)


def plan_delivery(
    h_est: np.ndarray,
    h_true: np.ndarray,
    power: np.ndarray,
    noise: float,
    method: str,
    eps: float = 0.0,
    rng: np.random.Generator | None = None,
    cache: BeamformerCache | None = None,
    designer: Callable[..., Any] = design,
) -> DeliveryPlan:
    """Apply the retransmission rule above to one group (h_est, h_true: (K, N, L)).

    `designer` replaces `design` (same signature; the simulator passes its per-slot memo of
    designs). Raises BeamformingError for inconsistent shapes or an unknown method.
    """
    h_est = np.asarray(h_est)
    h_true = np.asarray(h_true)
    if h_true.shape != h_est.shape:
        raise BeamformingError(f"h_true: shape {h_true.shape} differs from the estimate's {h_est.shape}")
    rng = np.random.default_rng(0) if rng is None else rng
    first = designer(h_est, power, noise, method, eps, rng, cache=cache)
    true_snr = evaluate(first.w, h_true, noise)
    failed = true_snr < first.min_snr * (1.0 - DECODE_RTOL)
    if not np.any(failed):
        return DeliveryPlan(first, true_snr, failed, None, float("nan"))
    retry = designer(h_est[failed], power, noise, method, eps, rng, cache=cache)
    retry_snr = float(np.min(evaluate(retry.w, h_true[failed], noise)))
    return DeliveryPlan(first, true_snr, failed, retry, retry_snr)
