"""Physics of the designs: single-user optima, budgets, monotonicity in nodes, SDR bounds."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.beamforming import BeamformerCache, design, single_user, within_budget, worst_case_snr

from .conftest import NOISE, rayleigh

ALL = ("mrt", "sdr", "fast", "fast-backoff", "robust", "robust-fast", "robust-sdp")


def test_single_user_every_method_reaches_closed_form_optimum():
    rng = np.random.default_rng(11)
    h = rayleigh(rng, 1, 3, 2)
    power = np.array([1.0, 0.5, 0.2])
    theory = (np.sqrt(power) @ np.linalg.norm(h[0], axis=1)) ** 2 / NOISE
    for method in ALL:
        general = design(h, power, NOISE, method, rng=np.random.default_rng(0), single_user_closed_form=False)
        shortcut = design(h, power, NOISE, method)
        assert general.min_snr == pytest.approx(theory, rel=1e-4), method
        assert shortcut.min_snr == pytest.approx(theory, rel=1e-12), method
        assert general.min_snr <= theory * (1 + 1e-9)  # nothing beats the optimum
    sdr = design(h, power, NOISE, "sdr", single_user_closed_form=False)
    assert sdr.upper_bound == pytest.approx(theory, rel=1e-4)  # the relaxation is tight for K = 1


def test_single_user_robust_optimum_beats_every_feasible_beamformer():
    # Node 1 is 25 dB weaker: under a large error bound its power widens the error ball more than
    # it adds gain, so the optimum keeps it below budget (full-power MRT is not optimal).
    rng = np.random.default_rng(5)
    h = rayleigh(rng, 1, 2, 2, spread_db=0.0)
    h[0, 1] *= 10 ** (-25 / 20)
    power = np.array([1.0, 1.0])
    eps = 0.3
    w, snr = single_user(h[0], power, NOISE, eps)
    assert np.linalg.norm(w[1]) ** 2 < 0.5 * power[1]
    assert worst_case_snr(w, h, NOISE, eps)[0] == pytest.approx(snr, rel=1e-12)
    mrt_worst = worst_case_snr(design(h, power, NOISE, "mrt").w, h, NOISE, eps)[0]
    assert snr > mrt_worst * 1.001
    # Random feasible beamformers (random directions and per-node powers) never do better.
    cand = rng.standard_normal((4000, 2, 2)) + 1j * rng.standard_normal((4000, 2, 2))
    cand *= (np.sqrt(rng.uniform(0, 1, (4000, 2, 1)) * power[None, :, None])) / np.linalg.norm(
        cand, axis=2, keepdims=True
    )
    for v in cand[::40]:
        assert worst_case_snr(v, h, NOISE, eps)[0] <= snr * (1 + 1e-12)
    # The S-procedure + DC solver and the numpy SCA both reach the closed form (every start of
    # the SCA has node 1 at full power, so it must find the lower power itself).
    general = design(h, power, NOISE, "robust-sdp", eps=eps, single_user_closed_form=False)
    assert general.min_snr == pytest.approx(snr, rel=1e-4)
    assert general.upper_bound == pytest.approx(snr, rel=1e-4)
    sca = design(h, power, NOISE, "robust", eps=eps, single_user_closed_form=False)
    assert sca.min_snr == pytest.approx(snr, rel=1e-4)
    assert sca.min_snr <= snr * (1 + 1e-12)


def test_per_node_budgets_hold_for_every_method():
    rng = np.random.default_rng(2)
    h = rayleigh(rng, 3, 3, 2)
    power = np.array([0.2, 1.0, 3.0])
    cache = BeamformerCache()
    for method in ALL:
        res = design(h, power, NOISE, method, eps=0.1, rng=np.random.default_rng(1), cache=cache)
        assert res.w.shape == (3, 2)
        assert within_budget(res.w, power), method
        used = np.sum(np.abs(res.w) ** 2, axis=1)
        assert np.all(used <= power * (1 + 1e-9))
        assert res.min_snr > 0


def test_adding_a_serving_node_never_lowers_min_snr():
    rng = np.random.default_rng(7)
    cache = BeamformerCache()
    for trial in range(3):
        h3 = rayleigh(rng, 3, 3, 2)
        power = np.ones(3)
        for method in ("sdr", "fast"):
            small = design(h3[:, :2], power[:2], NOISE, method, rng=np.random.default_rng(trial), cache=cache)
            big = design(h3, power, NOISE, method, rng=np.random.default_rng(trial), cache=cache)
            # The two-node design is feasible for three nodes (third node silent), so the
            # optimum cannot drop; our designs must not either (1 % randomisation slack).
            assert big.min_snr >= small.min_snr * 0.99, (method, trial)
            if method == "sdr":
                assert big.upper_bound >= small.upper_bound * (1 - 1e-6)


def test_sdr_beats_mrt_on_multiuser_groups_and_stays_below_its_bound():
    rng = np.random.default_rng(3)
    cache = BeamformerCache()
    gains = []
    for seed in range(5):
        h = rayleigh(rng, 4, 2, 2)
        power = np.array([1.0, 0.5])
        sdr = design(h, power, NOISE, "sdr", rng=np.random.default_rng(seed), cache=cache)
        mrt = design(h, power, NOISE, "mrt")
        assert sdr.min_snr <= sdr.upper_bound * (1 + 1e-5)
        assert sdr.status in ("optimal", "optimal_inaccurate")
        gains.append(sdr.min_snr / mrt.min_snr)
    assert np.mean(gains) > 1.05
    assert min(gains) >= 0.99


def test_fast_path_close_to_sdr():
    rng = np.random.default_rng(9)
    cache = BeamformerCache()
    ratios = []
    for seed in range(5):
        h = rayleigh(rng, 4, 2, 2)
        power = np.ones(2)
        sdr = design(h, power, NOISE, "sdr", rng=np.random.default_rng(seed), cache=cache)
        fast = design(h, power, NOISE, "fast")
        assert fast.min_snr <= sdr.upper_bound * (1 + 1e-5)
        ratios.append(fast.min_snr / sdr.min_snr)
    assert np.mean(ratios) > 0.95


def test_same_seed_same_design():
    rng = np.random.default_rng(4)
    h = rayleigh(rng, 3, 2, 2)
    power = np.ones(2)
    for method in ("sdr", "fast", "robust", "robust-sdp"):
        a = design(h, power, NOISE, method, eps=0.1, rng=np.random.default_rng(123))
        b = design(h, power, NOISE, method, eps=0.1, rng=np.random.default_rng(123))
        np.testing.assert_array_equal(a.w, b.w)
        assert a.min_snr == b.min_snr
