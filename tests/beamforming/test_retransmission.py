"""The one rate rule (capped Shannon rate) and the retransmission rules: resend and HARQ-IR."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.beamforming import MAX_SPECTRAL_EFFICIENCY, airtime, evaluate, plan_delivery, rate_bps

from .conftest import NOISE, rayleigh


def test_rate_is_capped_at_the_mcs_table_maximum():
    assert MAX_SPECTRAL_EFFICIENCY == pytest.approx(948 / 1024 * 8, abs=1e-4)  # TS 38.214 256QAM MCS 27
    bandwidth = 1e8
    assert rate_bps(1e6, bandwidth) == pytest.approx(bandwidth * MAX_SPECTRAL_EFFICIENCY)  # 60 dB
    assert rate_bps(15.0, bandwidth) == pytest.approx(bandwidth * 4.0)  # below the cap: Shannon
    assert rate_bps(1e6, bandwidth, max_se=np.inf) == pytest.approx(bandwidth * np.log2(1 + 1e6))
    assert airtime(8e6, 0.0, bandwidth) < np.inf  # a deaf group still ends (SNR floor)


def _failing_draw(rng, h, eps, power, method):
    for _ in range(200):
        e = rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)
        e *= eps * np.linalg.norm(h, axis=2, keepdims=True) / np.linalg.norm(e, axis=2, keepdims=True)
        plan = plan_delivery(h, h + e, power, NOISE, method, rng=rng, max_se=np.inf)
        if plan.failed.any():
            return e, plan
    pytest.fail("no error draw made the nominal design fail")


def test_harq_ir_rounds_follow_accumulated_mutual_information():
    rng = np.random.default_rng(5)
    h = rayleigh(rng, 6, 2, 2)
    power = np.ones(2)
    bits, bandwidth = 8e6, 1e8
    e, plan = _failing_draw(rng, h, 0.3, power, "fast-harq")
    assert plan.scheme == "ir" and plan.retry is None
    r1 = bandwidth * np.log2(1 + plan.rate_snr)
    true = bandwidth * np.log2(1 + evaluate(plan.first.w, h + e, NOISE))
    rounds = plan.rounds(bandwidth)
    tau1 = bits / r1
    for k in range(len(h)):
        # the smallest m with m tau1 R_true,k >= bits (1 for those that decode the first time)
        m = int(rounds[k])
        assert m * tau1 * true[k] >= bits * (1 - 1e-9)
        assert m == 1 or (m - 1) * tau1 * true[k] < bits
    assert (rounds[plan.failed] >= 2).all() and (rounds[~plan.failed] == 1).all()
    first, busy = plan.airtimes(bits, bandwidth)
    assert first == pytest.approx(tau1) and busy == pytest.approx((rounds.max() - 1) * tau1)
    np.testing.assert_allclose(plan.user_airtime(bits, bandwidth), rounds * tau1)
    # the same beamformer and first rate as the nominal design: only the recovery differs
    nominal = plan_delivery(h, h + e, power, NOISE, "fast", rng=np.random.default_rng(5), max_se=np.inf)
    assert nominal.scheme == "resend"


def test_capped_rate_decides_who_fails():
    # every user far above the cap's SNR: the design's SNR shortfalls cost nothing once capped
    rng = np.random.default_rng(2)
    h = rayleigh(rng, 4, 2, 2) * 1e4
    e = 0.3 * h * np.exp(1j * rng.uniform(0, 2 * np.pi, size=h.shape))
    uncapped = plan_delivery(h, h + e, np.ones(2), NOISE, "fast-harq", max_se=np.inf)
    capped = plan_delivery(h, h + e, np.ones(2), NOISE, "fast-harq")
    assert uncapped.failed.any() and not capped.failed.any()


def test_per_node_worst_case_is_attained_and_never_below_the_stacked_one():
    from delivery.beamforming import design
    from delivery.beamforming.result import per_node_worst_case_snr, worst_case_snr

    rng = np.random.default_rng(9)
    h = rayleigh(rng, 5, 3, 2)
    eps = 0.2
    res = design(h, np.ones(3), NOISE, "robust", eps=eps, rng=rng)
    per_node = per_node_worst_case_snr(res.w, h, NOISE, eps)
    stacked = worst_case_snr(res.w, h, NOISE, eps)
    assert (per_node >= stacked * (1 - 1e-12)).all()
    for k in range(len(h)):
        # aligned per-node errors attain it; random ones within the balls never go below it
        phase = h[k].reshape(-1).conj() @ res.w.reshape(-1)
        phase /= abs(phase)
        wn = np.linalg.norm(res.w, axis=1, keepdims=True)
        e = -eps * np.linalg.norm(h[k], axis=1, keepdims=True) * res.w / np.where(wn > 0, wn, 1) * np.conj(phase)
        assert evaluate(res.w, (h[k] + e)[None], NOISE)[0] == pytest.approx(per_node[k], rel=1e-9)
        d = rng.standard_normal((200, 3, 2)) + 1j * rng.standard_normal((200, 3, 2))
        d *= (eps * np.linalg.norm(h[k], axis=1) * rng.uniform(size=(200, 3)))[..., None] / np.linalg.norm(
            d, axis=2, keepdims=True
        )
        assert (evaluate(res.w, h[k][None] + d, NOISE) >= per_node[k] * (1 - 1e-9)).all()
