"""The one interval shape of result files and tables (delivery.interval)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from delivery.interval import KEYS, Interval

SAMPLES = [2.0, 4.0, 9.0, 5.0]  # mean 5, sample sd sqrt(26/3)


def test_student_t_interval_of_known_samples():
    got = Interval.from_samples(SAMPLES)
    lo, hi = stats.t.interval(0.95, len(SAMPLES) - 1, loc=np.mean(SAMPLES), scale=stats.sem(SAMPLES))
    assert got.n == 4 and got.mean == 5.0
    assert math.isclose(got.lo, lo, rel_tol=1e-12) and math.isclose(got.hi, hi, rel_tol=1e-12)
    # by hand: t(0.975, 3) = 3.182446305284263, sd = sqrt(26/3), half = t sd / 2
    assert math.isclose(got.half_width, 3.182446305284263 * math.sqrt(26 / 3) / 2, rel_tol=1e-12)
    # a wider confidence gives a wider interval around the same mean
    assert Interval.from_samples(SAMPLES, 0.99).half_width > got.half_width


def test_json_round_trip_keys_and_strictness():
    iv = Interval.from_samples(SAMPLES)
    data = iv.to_json()
    assert tuple(data) == KEYS and data["lo"] == iv.mean - iv.half_width
    assert Interval.from_json(json.loads(json.dumps(data))) == iv
    assert Interval.from_json({**data, "ratio": 0.9, "vs": "lfu"}) == iv  # extra keys beside it
    for bad in ({k: v for k, v in data.items() if k != "hi"}, {**data, "lo": 0.0}, {**data, "n": 0}, [1, 2]):
        with pytest.raises(ValueError, match="row 3"):
            Interval.from_json(bad, "row 3")


def test_one_sample_has_no_width_and_writes_null():
    one = Interval.from_samples([1.5])
    assert one.n == 1 and one.mean == 1.5 and math.isnan(one.half_width)
    data = one.to_json()
    assert data == {"mean": 1.5, "half_width": None, "lo": None, "hi": None, "n": 1}
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN token
    back = Interval.from_json(data)
    assert back.mean == 1.5 and math.isnan(back.hi)
    assert one.format() == "1.500 (n=1)" and one.format_range() == "(n=1)"
    assert Interval(1.0, 0.25, 3).format(".2f") == "1.00 ± 0.25"
    assert Interval(-1.0, 0.25, 3).format("+.2f") == "-1.00 ± 0.25"
    assert Interval(1.0, 0.25, 3).format_range("+.2f") == "[+0.75, +1.25]"
    with pytest.raises(ValueError):
        Interval.from_samples([])
    with pytest.raises(ValueError):
        Interval.from_samples(SAMPLES, 1.0)
