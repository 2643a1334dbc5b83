"""Inputs, errors and the solution cache."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.beamforming import BeamformerCache, BeamformingError, design
from pbkit.errors import PbkitError

from .conftest import NOISE, rayleigh


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(h=np.ones((2, 3))), "shape"),
        (dict(power=np.array([1.0, -1.0])), "power"),
        (dict(power=np.ones(3)), "power"),
        (dict(noise=0.0), "noise"),
        (dict(eps=1.0), "eps"),
        (dict(method="zf"), "method"),
    ],
)
def test_bad_inputs_raise_one_line_errors(kwargs, fragment):
    rng = np.random.default_rng(0)
    args = dict(h=rayleigh(rng, 2, 2, 2), power=np.ones(2), noise=NOISE, method="sdr", eps=0.0)
    args.update(kwargs)
    with pytest.raises(BeamformingError, match=fragment) as info:
        design(**args)
    assert isinstance(info.value, PbkitError)
    assert "\n" not in str(info.value)


def test_cache_counts_hits_and_returns_exact_snrs():
    rng = np.random.default_rng(1)
    h = rayleigh(rng, 3, 2, 2)
    power = np.ones(2)
    cache = BeamformerCache(maxsize=2)
    first = design(h, power, NOISE, "sdr", cache=cache)
    again = design(h.copy(), power, NOISE, "sdr", cache=cache)
    assert (cache.hits, cache.misses) == (1, 1) and again.cached and not first.cached
    np.testing.assert_array_equal(first.w, again.w)
    # A perturbation below the quantisation shares the design, with SNRs recomputed exactly.
    nudged = h * (1 + 1e-9)
    near = design(nudged, power, NOISE, "sdr", cache=cache)
    assert near.cached and near.min_snr == pytest.approx(first.min_snr * (1 + 1e-9) ** 2, rel=1e-12)
    # Other power, method or eps: misses.
    design(h, power * 2, NOISE, "sdr", cache=cache)
    design(h, power, NOISE, "fast", cache=cache)
    assert cache.misses == 3 and len(cache) == 2  # LRU bounded
    assert cache.problems.builds == 1  # one compiled SDR for the (3, 2, 2) shape


def test_zero_power_node_is_silent():
    rng = np.random.default_rng(2)
    h = rayleigh(rng, 2, 2, 2)
    power = np.array([1.0, 0.0])
    for method in ("mrt", "sdr", "fast"):
        res = design(h, power, NOISE, method)
        assert np.allclose(res.w[1], 0)
        assert res.min_snr > 0
