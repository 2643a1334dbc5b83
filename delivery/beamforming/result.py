"""The beamformer a design returns, and the exact SNR arithmetic every method shares.

SNR of user k under beamformer w (stacked over the serving nodes):
    SNR_k = |h_k^H w|^2 / noise.
Worst case over the error set ||e_k|| <= eps ||h_k|| (exact, by Cauchy-Schwarz with the error
aligned against w):  min_e |(h_k + e)^H w|^2 = max(0, |h_k^H w| - eps ||h_k|| ||w||)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbkit.errors import PbkitError

# np.einsum's own kernel: np.einsum(..., optimize=False) is exactly c_einsum(...) behind two Python
# wrappers (array-function dispatch and its argument handling), which cost more than the products
# of the SCA loops' tiny arrays; ndarray.all without its wrapper likewise
try:
    from numpy._core.multiarray import c_einsum  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import c_einsum

_all = np.logical_and.reduce

METHODS = ("mrt", "sdr", "fast", "fast-backoff", "fast-harq", "robust", "robust-fast", "robust-sdp")
# Designed for the worst case within eps (eps changes the beamformer).
ROBUST_DESIGNS = ("robust", "robust-fast", "robust-sdp")
# min_snr (so the rate) is the exact worst case within eps: the robust designs, and the nominal
# design with its rate backed off to that worst case.
ROBUST_METHODS = (*ROBUST_DESIGNS, "fast-backoff")
# The nominal design sent with hybrid ARQ, incremental redundancy (retransmission.py): its rate is
# the estimated min SNR's, failed users accumulate redundancy rounds instead of a genie resend.
HARQ_METHODS = ("fast-harq",)

# Budgets hold to this relative slack (rounding of the final per-node rescale).
BUDGET_RTOL = 1e-9


class BeamformingError(PbkitError, ValueError):
    """A beamforming input has the wrong shape, sign or method name."""


@dataclass(frozen=True)
class BeamformingResult:
    """One multicast beamformer and what it guarantees.

    `min_snr` is linear and guaranteed for every user of the group: on the given (estimated)
    channels for mrt/sdr/fast, and for every channel within the error bound for the methods in
    ROBUST_METHODS (robust, robust-fast, robust-sdp, fast-backoff).
    """

    w: np.ndarray  # complex (N, L): ||w[n]||^2 <= power[n]
    min_snr: float
    snr: np.ndarray  # (K,) per-user SNR on the given channels
    worst_snr: np.ndarray  # (K,) per-user worst case within eps (equals snr when eps == 0)
    method: str
    eps: float
    status: str  # "closed-form", "optimal", "optimal_inaccurate", "heuristic", "fallback-fast: ..."
    solver: str | None  # conic solver that produced the relaxation, if any
    solve_time: float  # wall seconds of the whole design
    iterations: int  # conic solves (sdr 1, robust-sdp 1 + DC steps) or SCA steps (fast, robust)
    upper_bound: float | None  # SNR bound from the convex relaxation (None without one)
    cached: bool = False  # served from a BeamformerCache


def validate(h: np.ndarray, power: np.ndarray, noise: float, eps: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Check shapes and signs; return (h complex (K,N,L), power float (N,), noise, eps)."""
    h = np.asarray(h)
    if h.ndim != 3 or min(h.shape) < 1:
        raise BeamformingError(f"h: expected a (K, N, L) channel array with K, N, L >= 1, got shape {h.shape}")
    h = h.astype(np.complex128, copy=False)
    if not np.all(np.isfinite(h)):
        raise BeamformingError("h: channel array contains NaN or infinity")
    power = np.asarray(power, dtype=np.float64).reshape(-1)
    if power.shape != (h.shape[1],):
        raise BeamformingError(
            f"power: expected shape ({h.shape[1]},) (one budget per serving node), got {power.shape}"
        )
    if not np.all(np.isfinite(power)) or np.any(power < 0) or not np.any(power > 0):
        raise BeamformingError(f"power: budgets must be finite, >= 0 and not all zero, got {power.tolist()}")
    noise = float(noise)
    if not np.isfinite(noise) or noise <= 0:
        raise BeamformingError(f"noise: must be a positive power in watts, got {noise}")
    eps = float(eps)
    if not np.isfinite(eps) or eps < 0 or eps >= 1:
        raise BeamformingError(f"eps: relative CSI error bound must be in [0, 1), got {eps}")
    return h, power, noise, eps


def evaluate(w: np.ndarray, h_true: np.ndarray, noise: float) -> np.ndarray:
    """Per-user SNR |h_k^H w|^2 / noise of beamformer w (N, L) on channels h_true (K, N, L)."""
    h_true = np.asarray(h_true, dtype=np.complex128)
    w = np.asarray(w, dtype=np.complex128)
    if h_true.ndim != 3 or h_true.shape[1:] != w.shape:
        raise BeamformingError(f"h_true: shape {h_true.shape} does not match beamformer shape {w.shape}")
    gains = h_true.reshape(h_true.shape[0], -1).conj() @ w.reshape(-1)
    return np.abs(gains) ** 2 / float(noise)


def worst_case_snr(w: np.ndarray, h: np.ndarray, noise: float, eps: float) -> np.ndarray:
    """Per-user exact worst-case SNR over ||e_k|| <= eps ||h_k||: max(0, |h^H w| - eps||h|| ||w||)^2 / noise."""
    h = np.asarray(h, dtype=np.complex128)
    flat = h.reshape(h.shape[0], -1)
    wf = np.asarray(w, dtype=np.complex128).reshape(-1)
    gain = np.abs(flat.conj() @ wf)
    margin = np.maximum(0.0, gain - eps * np.linalg.norm(flat, axis=1) * np.linalg.norm(wf))
    return margin**2 / float(noise)


def per_node_worst_case_snr(w: np.ndarray, h: np.ndarray, noise: float, eps: float) -> np.ndarray:
    """Per-user exact worst-case SNR over the per-node balls ||e_kn|| <= eps ||h_kn|| (the error
    set the simulator draws from, delivery/channels.py):
        max(0, |h_k^H w| - eps sum_n ||h_kn|| ||w_n||)^2 / noise,
    attained by aligning every e_kn against w_n. By Cauchy-Schwarz it is >= `worst_case_snr`
    (the stacked ball ||e_k|| <= eps ||h_k||, which contains the per-node set)."""
    h = np.asarray(h, dtype=np.complex128)
    w = np.asarray(w, dtype=np.complex128)
    gain = np.abs(h.reshape(h.shape[0], -1).conj() @ w.reshape(-1))
    loss = eps * np.linalg.norm(h, axis=2) @ np.linalg.norm(w, axis=1)  # (K,)
    return np.maximum(0.0, gain - loss) ** 2 / float(noise)


def within_budget(w: np.ndarray, power: np.ndarray, rtol: float = BUDGET_RTOL) -> bool:
    """True when every node's ||w_n||^2 <= P_n (1 + rtol)."""
    used = np.sum(np.abs(np.asarray(w)) ** 2, axis=1)
    return bool(np.all(used <= np.asarray(power) * (1.0 + rtol) + 1e-300))


def scale_to_budgets(v: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Largest uniform scaling of v (..., N, L) that keeps every node within its budget.

    Uniform scaling keeps the beam direction, so the SNR ratios between users are unchanged and
    the binding node transmits at full power (the SNR is increasing in the scale).
    """
    norms = np.sqrt(np.sum(np.abs(v) ** 2, axis=-1))  # (..., N)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(norms > 0, np.sqrt(power) / np.where(norms > 0, norms, 1.0), np.inf)
    scale = np.min(ratio, axis=-1)
    scale = np.where(np.isfinite(scale), scale, 0.0)
    return v * scale[..., None, None]


def vector_norms(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """Euclidean norms along `axis`: numpy.linalg.norm's own formula for this case, bit for bit,
    without its argument handling (the SCA loops call it ~40 000 times a slot)."""
    return np.sqrt(np.add.reduce((x.conj() * x).real, axis=axis, keepdims=keepdims))


def per_node_full_power(v: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Rescale each node's block of v (..., N, L) to exactly its budget (zero blocks stay zero)."""
    # einsum on real and imaginary parts, not abs(): the inner loop of the fast designs
    re, im = v.real, v.imag
    n2 = c_einsum("...i,...i->...", re, re) + c_einsum("...i,...i->...", im, im)
    # a zero block stays zero; divide-where instead of an errstate block (called ~4000 times a slot)
    f = np.divide(power, n2, out=np.zeros(n2.shape), where=n2 > 0)
    np.sqrt(f, out=f)
    # f >= 0, so it is all finite iff its max is below inf (a nan max fails too): one reduction
    if not np.maximum.reduce(f, axis=None, initial=0.0) < np.inf:  # (a subnormal block overflows the ratio)
        f[~np.isfinite(f)] = 0.0
    return v * f[..., None]


def clip_to_budgets(w: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Project each node's block onto its power ball (a no-op for feasible w; guards rounding)."""
    norms2 = np.sum(np.abs(w) ** 2, axis=-1, keepdims=True)
    factor = np.where(norms2 > power[:, None], np.sqrt(power[:, None] / np.where(norms2 > 0, norms2, 1.0)), 1.0)
    return w * factor
