"""The numpy robust design ("robust", robust_sca.py) and the backed-off nominal one ("fast-backoff")."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.beamforming import design, evaluate, plan_delivery, within_budget, worst_case_snr
from delivery.beamforming.closed_form import single_user_amplitudes
from delivery.beamforming.robust_sca import RobustScaSettings, _amplitudes, design_robust_sca
from delivery.beamforming.scaling import scale_problem

from .conftest import NOISE, rayleigh
from .test_robust import sphere_errors, worst_direction


def random_instance(rng: np.random.Generator, k_max: int = 8):
    k, n, l = int(rng.integers(2, k_max + 1)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    h = rayleigh(rng, k, n, l)
    power = rng.uniform(0.1, 2.0, n)
    return h, power, float(rng.uniform(0.01, 0.5))


def test_amplitudes_match_the_single_user_closed_form():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 6))
        c = rng.exponential(1.0, n) * (rng.random(n) > 0.2)  # some nodes with no gain
        s = rng.uniform(0.1, 1.0, n)
        eps = float(rng.uniform(0, 1))
        e = eps * float(np.linalg.norm(c))
        a = _amplitudes(c[None, :], s, np.array([e]))[0]
        b = single_user_amplitudes(c, s**2, eps)
        assert np.all(a >= 0) and np.all(a <= s * (1 + 1e-12))
        value = lambda x, c=c, e=e: x @ c - e * np.linalg.norm(x)
        assert value(a) >= value(b) - 1e-12 * max(1.0, abs(value(b)))


def test_guarantee_is_exact_and_holds_for_every_channel_in_the_ball():
    rng = np.random.default_rng(1)
    for _ in range(25):
        h, power, eps = random_instance(rng)
        res = design(h, power, NOISE, "robust", eps=eps, rng=np.random.default_rng(0))
        assert within_budget(res.w, power)
        # min_snr is exactly the closed-form worst case of the returned w, never more.
        exact = worst_case_snr(res.w, h, NOISE, eps)
        assert res.min_snr == pytest.approx(float(np.min(exact)), rel=1e-12, abs=0.0)
        errors = sphere_errors(rng, h, eps, 200)
        inside = errors * rng.uniform(0, 1, (200, 1, 1, 1))
        for e in np.concatenate([errors, inside]):
            assert np.all(evaluate(res.w, h + e, NOISE) >= res.min_snr * (1 - 1e-9))
        if res.min_snr > 0:  # the worst direction attains it: exact, not conservative
            worst = evaluate(res.w, h + worst_direction(res.w, h, eps), NOISE)
            assert np.min(worst) == pytest.approx(res.min_snr, rel=1e-9)


def test_never_worse_than_robust_fast_and_beats_it_at_large_eps():
    rng = np.random.default_rng(2)
    gains = []
    for _i in range(20):
        h, power, eps = random_instance(rng, k_max=12)
        robust = design(h, power, NOISE, "robust", eps=eps)
        rfast = design(h, power, NOISE, "robust-fast", eps=eps)
        assert robust.min_snr >= rfast.min_snr * (1 - 1e-12)
        gains.append(robust.min_snr / max(rfast.min_snr, 1e-300))
    # robust-fast keeps every node at full power; the exact design does strictly better somewhere.
    assert max(gains) > 1.01


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_one_more_sca_pass_from_the_output_gains_less_than_3_percent(eps):
    rng = np.random.default_rng(3)
    for _ in range(3):
        h = rayleigh(rng, 20, 4, 4)
        power = np.ones(4)
        res = design(h, power, NOISE, "robust", eps=eps)
        sp = scale_problem(h, power, NOISE)
        v = (res.w / np.sqrt(sp.p_max)).reshape(-1)
        # A longer, tighter pass than the design's own (which stops at a relative dual gap of 2e-4).
        _, gain, _ = design_robust_sca(sp, eps, v[None, :], RobustScaSettings(outer=200, gap=1e-6))
        again = max(gain, 0.0) ** 2 * sp.snr_unit
        assert res.min_snr > 0
        assert again <= res.min_snr * 1.03


def test_at_least_as_good_as_the_sdp_reference_on_small_groups():
    # Up to the SCA's stopping tolerance (relative dual gap 2e-4 on the amplitude, so 4e-4 on
    # the SNR; see docs/beamforming.md for the measured distribution).
    rng = np.random.default_rng(4)
    for k, n, eps in ((3, 2, 0.2), (4, 2, 0.3)):
        h = rayleigh(rng, k, n, 2)
        power = np.ones(n)
        robust = design(h, power, NOISE, "robust", eps=eps)
        sdp = design(h, power, NOISE, "robust-sdp", eps=eps, rng=np.random.default_rng(0))
        assert robust.min_snr >= sdp.min_snr * (1 - 1e-3)
        assert robust.min_snr <= sdp.upper_bound * (1 + 1e-4)  # the relaxation bounds it


def test_zero_power_node_is_silent_and_budgets_hold():
    rng = np.random.default_rng(5)
    h = rayleigh(rng, 4, 3, 2)
    power = np.array([1.0, 0.0, 0.3])
    res = design(h, power, NOISE, "robust", eps=0.2)
    assert np.all(res.w[1] == 0) and within_budget(res.w, power) and res.min_snr > 0


def test_fast_backoff_is_the_nominal_beamformer_at_its_worst_case_rate():
    rng = np.random.default_rng(6)
    h = rayleigh(rng, 6, 3, 2)
    power = np.ones(3)
    eps = 0.1
    nominal = design(h, power, NOISE, "fast", eps=eps)
    backoff = design(h, power, NOISE, "fast-backoff", eps=eps)
    np.testing.assert_array_equal(backoff.w, nominal.w)
    assert backoff.min_snr == pytest.approx(float(np.min(worst_case_snr(nominal.w, h, NOISE, eps))), rel=1e-12)
    assert backoff.min_snr < nominal.min_snr  # the back-off costs rate
    assert design(h, power, NOISE, "fast-backoff").min_snr == pytest.approx(nominal.min_snr, rel=1e-12)
    # Its rate never needs a retransmission for errors inside the bound; the nominal one does.
    nominal_failed = 0
    for e in sphere_errors(rng, h, eps, 40):
        assert not plan_delivery(h, h + e, power, NOISE, "fast-backoff", eps=eps).failed.any()
        nominal_failed += plan_delivery(h, h + e, power, NOISE, "fast", eps=eps).failed.any()
    assert nominal_failed > 0


@pytest.mark.parametrize("bad", [{"outer": 0}, {"inner": 0}, {"start_steps": 0}])
def test_settings_without_a_step_are_refused(bad):
    from delivery.beamforming import BeamformingError

    with pytest.raises(BeamformingError, match="must be at least 1"):
        RobustScaSettings(**bad)
