"""Delivery of one PB group under CSI error: the rate rule and the retransmission rules.

The one rate rule (`rate_bps`, `airtime`): R = B min(log2(1 + SNR), se_max). The cap se_max is
the largest spectral efficiency a real modulation and coding scheme reaches; the default,
7.4063 b/s/Hz, is 3GPP TS 38.214 Table 5.1.3.1-2 (256QAM), MCS 27: Q_m = 8, R = 948/1024.
Without the cap the Shannon rate at 10 m reaches about 20 b/s/Hz, which no receiver decodes.

First transmission (every method): the nodes design w1 on the estimated channels and pick the
rate of the SNR the design guarantees, R1 = rate(min_snr) (estimated min SNR for mrt/sdr/fast/
fast-harq, worst case within eps for the ROBUST_METHODS). User k decodes iff its true (capped) rate
reaches R1, i.e. min(SNR_k, 2^se_max - 1) >= min(min_snr, 2^se_max - 1) with SNR_k =
|h_k^H w1|^2 / noise (relative slack 1e-9 for rounding); the others are "failed".

Then, by method (docs/beamforming.md, "Retransmission"):
- "resend" (mrt, sdr, fast and the robust methods): the nodes design w2 for the failed users on
  their estimates and send the PB once more at the rate of the failed users' TRUE min SNR under
  w2 (a genie: the NACK is assumed to carry the achieved SNR, so the second attempt decodes).
  Failed users finish after tau1 + tau2; the channel is busy for tau1 + tau2.
- "ir" (fast-harq: hybrid ARQ with incremental redundancy, as in LTE/NR): nothing is known
  about the true SNR; the nodes keep sending redundancy rounds of the first transmission's
  length tau1 with the same beamformer until every user has ACKed. A user's mutual information
  accumulates over rounds (Caire and Tuninetti, IEEE Trans. IT 47(5), 2001), so user k decodes
  after m_k = ceil(R1 / R_true,k) rounds, R_true,k = rate(true SNR_k). The channel is busy for
  max_k m_k tau1; user k finishes after m_k tau1. ACK/NACK feedback time is neglected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .api import design
from .cache import BeamformerCache
from .result import HARQ_METHODS, BeamformingError, BeamformingResult, evaluate

DECODE_RTOL = 1e-9
# 3GPP TS 38.214 V17 Table 5.1.3.1-2 (MCS index table 2, 256QAM), MCS 27: 948/1024 x 8 bits
MAX_SPECTRAL_EFFICIENCY = 7.4063
SNR_FLOOR = 1e-12  # a group nobody can hear still gets a finite (huge) airtime


def rate_bps(snr: float | np.ndarray, bandwidth: float, max_se: float = MAX_SPECTRAL_EFFICIENCY) -> float | np.ndarray:
    """The one rate rule: B min(log2(1 + SNR), max_se) in bit/s (max_se = inf: Shannon alone)."""
    se = np.log2(1.0 + np.maximum(np.asarray(snr, dtype=np.float64), SNR_FLOOR))
    return bandwidth * np.minimum(se, max_se)


def airtime(bits: float, snr: float, bandwidth: float, max_se: float = MAX_SPECTRAL_EFFICIENCY) -> float:
    """Seconds to send `bits` at `rate_bps(snr)`; an SNR of 0 counts as SNR_FLOOR (finite, huge)."""
    return float(bits / rate_bps(snr, bandwidth, max_se))


@dataclass(frozen=True)
class DeliveryPlan:
    first: BeamformingResult  # designed on the estimated channels of the whole group
    true_snr: np.ndarray  # (K,) true SNR of every user under first.w
    failed: np.ndarray  # (K,) bool: true SNR below the first rate's SNR
    retry: BeamformingResult | None  # resend: designed on the estimates of the failed users
    retry_snr: float  # resend: SNR the retransmission's rate is chosen for (nan without one)
    scheme: str = "resend"  # "resend" | "ir"
    max_se: float = MAX_SPECTRAL_EFFICIENCY  # the rate cap the plan was made for (b/s/Hz)

    @property
    def rate_snr(self) -> float:
        return self.first.min_snr

    def rounds(self, bandwidth: float) -> np.ndarray:
        """(K,) ir: redundancy rounds of length tau1 each user needs (1 = the first suffices)."""
        r1 = rate_bps(self.rate_snr, bandwidth, self.max_se)
        r_true = rate_bps(self.true_snr, bandwidth, self.max_se)
        need = np.ceil(r1 / r_true * (1.0 - DECODE_RTOL))
        return np.where(self.failed, np.maximum(need, 2.0), 1.0)

    def user_extra(self, bits: float, bandwidth: float) -> np.ndarray:
        """(K,) seconds each user waits after the first transmission until it has decoded."""
        tau1 = airtime(bits, self.rate_snr, bandwidth, self.max_se)
        if not self.failed.any():
            return np.zeros(len(self.failed))
        if self.scheme == "ir":
            return (self.rounds(bandwidth) - 1.0) * tau1
        return np.where(self.failed, airtime(bits, self.retry_snr, bandwidth, self.max_se), 0.0)

    def airtimes(self, bits: float, bandwidth: float) -> tuple[float, float]:
        """(first, retransmission) channel seconds; the retransmission is 0 when nobody failed."""
        tau1 = airtime(bits, self.rate_snr, bandwidth, self.max_se)
        extra = self.user_extra(bits, bandwidth)
        return tau1, float(extra.max()) if len(extra) else 0.0

    def user_airtime(self, bits: float, bandwidth: float) -> np.ndarray:
        """(K,) seconds from the first transmission's start until each user has decoded."""
        return airtime(bits, self.rate_snr, bandwidth, self.max_se) + self.user_extra(bits, bandwidth)


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
    max_se: float = MAX_SPECTRAL_EFFICIENCY,
) -> DeliveryPlan:
    """Apply the method's retransmission rule above to one group (h_est, h_true: (K, N, L)).

    `designer` replaces `design` (same signature; the simulator passes its per-slot memo of
    designs). `max_se` caps the rate (b/s/Hz): a user decodes when its capped rate reaches the
    transmitted one, so above the cap's SNR a shortfall costs nothing. Raises BeamformingError for inconsistent shapes or an unknown method.
    """
    h_est = np.asarray(h_est)
    h_true = np.asarray(h_true)
    if h_true.shape != h_est.shape:
        raise BeamformingError(f"h_true: shape {h_true.shape} differs from the estimate's {h_est.shape}")
    rng = np.random.default_rng(0) if rng is None else rng
    first = designer(h_est, power, noise, method, eps, rng, cache=cache)
    true_snr = evaluate(first.w, h_true, noise)
    top = 2.0**max_se - 1.0  # the SNR at which the rate reaches the cap
    failed = np.minimum(true_snr, top) < min(first.min_snr, top) * (1.0 - DECODE_RTOL)
    if method in HARQ_METHODS:
        return DeliveryPlan(first, true_snr, failed, None, math.nan, scheme="ir", max_se=max_se)
    if not np.any(failed):
        return DeliveryPlan(first, true_snr, failed, None, math.nan, max_se=max_se)
    retry = designer(h_est[failed], power, noise, method, eps, rng, cache=cache)
    retry_snr = float(np.min(evaluate(retry.w, h_true[failed], noise)))
    return DeliveryPlan(first, true_snr, failed, retry, retry_snr, max_se=max_se)
