"""Single-group multicast beamforming for the CoMP simulator (docs/beamforming.md).

from delivery.beamforming import design
result = design(h, power, noise, "sdr", eps=0.0, rng=rng)   # h: (K, N, L) complex
result.w        # (N, L), every node within its budget
result.min_snr  # linear SNR guaranteed for every user of the group
"""

from .api import BATCHED_METHODS, DEFAULT_RANDOMISATIONS, CachedDesigner, design, design_batch
from .cache import BeamformerCache
from .closed_form import mrt, single_user
from .fast import FastSettings
from .result import (
    METHODS,
    ROBUST_DESIGNS,
    ROBUST_METHODS,
    BeamformingError,
    BeamformingResult,
    evaluate,
    within_budget,
    worst_case_snr,
)
from .retransmission import MAX_SPECTRAL_EFFICIENCY, DeliveryPlan, airtime, plan_delivery, rate_bps
from .robust_sca import RobustScaSettings

__all__ = [
    "BATCHED_METHODS",
    "CachedDesigner",
    "design_batch",
    "BeamformerCache",
    "BeamformingError",
    "BeamformingResult",
    "DEFAULT_RANDOMISATIONS",
    "DeliveryPlan",
    "FastSettings",
    "MAX_SPECTRAL_EFFICIENCY",
    "METHODS",
    "ROBUST_DESIGNS",
    "ROBUST_METHODS",
    "RobustScaSettings",
    "airtime",
    "design",
    "evaluate",
    "mrt",
    "plan_delivery",
    "rate_bps",
    "single_user",
    "within_budget",
    "worst_case_snr",
]
