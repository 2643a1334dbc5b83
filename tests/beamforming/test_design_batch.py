"""design_batch gives each channel array the design `design` gives it alone, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.beamforming import BATCHED_METHODS, BeamformerCache, design, design_batch


def _channels(rng: np.random.Generator, b: int, k: int, n: int, l: int) -> np.ndarray:
    h = rng.standard_normal((b, k, n, l)) + 1j * rng.standard_normal((b, k, n, l))
    return h * 10 ** rng.uniform(-6, -4, size=(b, k, 1, 1))


@pytest.mark.parametrize("method,eps", [(m, 0.1) for m in BATCHED_METHODS] + [("robust", 0.3), ("mrt", 0.1)])
def test_batch_equals_one_by_one(method, eps):
    rng = np.random.default_rng(11)
    for k, n, l in ((2, 2, 4), (5, 4, 4), (9, 3, 2)):  # tiny, small and larger groups (robust's starts)
        hs = _channels(rng, 4, k, n, l)
        power = np.array([1.0, 0.5, 2.0, 1.0][:n])
        batch = design_batch(hs, power, 1e-13, method, eps)
        for h, got in zip(hs, batch):
            alone = design(h, power, 1e-13, method, eps)
            assert np.array_equal(got.w, alone.w)
            assert got.min_snr == alone.min_snr and got.iterations == alone.iterations


def test_batch_uses_and_fills_the_cache():
    rng = np.random.default_rng(3)
    hs = _channels(rng, 3, 4, 2, 2)
    cache = BeamformerCache()
    first = design_batch(hs, np.ones(2), 1e-13, "robust", 0.1, cache=cache)
    assert len(cache) == 3 and not any(r.cached for r in first)
    again = design_batch(hs, np.ones(2), 1e-13, "robust", 0.1, cache=cache)
    assert all(r.cached for r in again)
    assert all(np.array_equal(a.w, b.w) for a, b in zip(first, again))


def test_batch_with_silent_users_equals_one_by_one():
    # a user with no channel drops out of the dominant-direction start; a problem whose users are
    # all silent has one start fewer (the batch's shared starts must still be each problem's own)
    rng = np.random.default_rng(5)
    hs = _channels(rng, 4, 5, 3, 2)
    hs[1] = 0.0
    hs[2, 3] = 0.0
    power = np.ones(3)
    for h, got in zip(hs, design_batch(hs, power, 1e-13, "robust", 0.1)):
        alone = design(h, power, 1e-13, "robust", 0.1)
        assert np.array_equal(got.w, alone.w)
        assert got.min_snr == alone.min_snr and got.iterations == alone.iterations
