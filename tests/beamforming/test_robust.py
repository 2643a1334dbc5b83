"""Robust designs (the S-procedure reference `robust-sdp`, robust-fast, the retransmission rule):
the guarantee holds for every error in the bound; the non-robust one misses."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.beamforming import BeamformerCache, design, evaluate, plan_delivery, worst_case_snr

from .conftest import NOISE, rayleigh


def sphere_errors(rng: np.random.Generator, h: np.ndarray, eps: float, draws: int) -> np.ndarray:
    """(draws, K, N, L) errors with ||e_k|| = eps ||h_k|| exactly (the boundary of the set)."""
    k = h.shape[0]
    e = rng.standard_normal((draws, *h.shape)) + 1j * rng.standard_normal((draws, *h.shape))
    norms = np.linalg.norm(e.reshape(draws, k, -1), axis=2)
    target = eps * np.linalg.norm(h.reshape(k, -1), axis=1)
    return e * (target / norms)[:, :, None, None]


def worst_direction(w: np.ndarray, h: np.ndarray, eps: float) -> np.ndarray:
    """The error that attains the worst case: -eps ||h_k|| w / ||w|| with the phase of h_k^H w."""
    flat = h.reshape(h.shape[0], -1)
    wf = w.reshape(-1)
    phase = (flat.conj() @ wf) / np.abs(flat.conj() @ wf)
    e = -eps * np.linalg.norm(flat, axis=1)[:, None] * np.conj(phase)[:, None] * (wf / np.linalg.norm(wf))[None, :]
    return e.reshape(h.shape)


@pytest.fixture(scope="module")
def group():
    rng = np.random.default_rng(21)
    return rayleigh(rng, 3, 2, 2), np.array([1.0, 0.6])


def test_robust_guarantee_holds_under_errors_within_the_bound(group):
    h, power = group
    eps = 0.2
    rng = np.random.default_rng(1)
    res = design(h, power, NOISE, "robust-sdp", eps=eps, rng=rng)
    assert res.min_snr > 0
    assert res.min_snr <= res.upper_bound * (1 + 1e-4)  # robust bound: solver tolerance
    errors = sphere_errors(rng, h, eps, 3000)
    for e in errors:
        assert np.all(evaluate(res.w, h + e, NOISE) >= res.min_snr * (1 - 1e-9))
    # Inside the ball too (radius scaled by a uniform factor).
    scale = rng.uniform(0, 1, (500, 1, 1, 1))
    for e in errors[:500] * scale:
        assert np.all(evaluate(res.w, h + e, NOISE) >= res.min_snr * (1 - 1e-9))
    # The worst direction attains the guarantee: it is exact, not conservative.
    worst = evaluate(res.w, h + worst_direction(res.w, h, eps), NOISE)
    np.testing.assert_allclose(worst, worst_case_snr(res.w, h, NOISE, eps), rtol=1e-9)
    assert np.min(worst) == pytest.approx(res.min_snr, rel=1e-9)


def test_non_robust_sdr_misses_its_prediction_and_robust_beats_its_worst_case(group):
    h, power = group
    eps = 0.2
    rng = np.random.default_rng(2)
    sdr = design(h, power, NOISE, "sdr", eps=eps, rng=rng)
    robust = design(h, power, NOISE, "robust-sdp", eps=eps, rng=rng)
    errors = sphere_errors(rng, h, eps, 400)
    misses = sum(np.min(evaluate(sdr.w, h + e, NOISE)) < sdr.min_snr for e in errors)
    assert misses > 0
    assert sdr.worst_snr.min() < sdr.min_snr
    # Designing for the worst case gives a better worst case than the nominal design has.
    assert robust.min_snr >= sdr.worst_snr.min() * (1 - 1e-6)


def test_robust_fast_guarantee_holds(group):
    h, power = group
    eps = 0.2
    rng = np.random.default_rng(3)
    res = design(h, power, NOISE, "robust-fast", eps=eps)
    for e in sphere_errors(rng, h, eps, 1000):
        assert np.all(evaluate(res.w, h + e, NOISE) >= res.min_snr * (1 - 1e-9))
    robust = design(h, power, NOISE, "robust-sdp", eps=eps, rng=rng)
    assert res.min_snr >= 0.8 * robust.min_snr


def test_retransmission_rule(group):
    h, power = group
    eps = 0.2
    rng = np.random.default_rng(4)
    cache = BeamformerCache()
    bits, bandwidth = 8e6, 1e8
    # Perfect CSI: nobody fails, one transmission.
    exact = plan_delivery(h, h, power, NOISE, "sdr", rng=rng, cache=cache)
    assert not exact.failed.any() and exact.retry is None
    tau1, tau2 = exact.airtimes(bits, bandwidth)
    assert tau2 == 0 and tau1 == pytest.approx(bits / (bandwidth * np.log2(1 + exact.rate_snr)))
    # Errors on the sphere: find one that breaks the non-robust design.
    for e in sphere_errors(rng, h, eps, 200):
        plan = plan_delivery(h, h + e, power, NOISE, "sdr", rng=rng, cache=cache)
        if plan.failed.any():
            break
    else:
        pytest.fail("no error draw made the non-robust design fail")
    assert np.all(plan.true_snr[plan.failed] < plan.rate_snr)
    assert np.all(plan.true_snr[~plan.failed] >= plan.rate_snr * (1 - 1e-9))
    retry_true = evaluate(plan.retry.w, (h + e)[plan.failed], NOISE)
    assert plan.retry_snr == pytest.approx(retry_true.min()) and plan.retry_snr > 0
    per_user = plan.user_airtime(bits, bandwidth)
    tau1, tau2 = plan.airtimes(bits, bandwidth)
    assert tau2 > 0
    np.testing.assert_allclose(per_user[plan.failed], tau1 + tau2)
    np.testing.assert_allclose(per_user[~plan.failed], tau1)
    # The robust design with the same error: nobody fails.
    robust = plan_delivery(h, h + e, power, NOISE, "robust", eps=eps, rng=rng, cache=cache)
    assert not robust.failed.any()
