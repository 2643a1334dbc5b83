"""learning.evaluate.summarise: the best heuristic a learner is judged against."""

import numpy as np

from learning.evaluate import summarise


def test_a_reference_or_bound_is_never_the_best_heuristic():
    values = {
        "greedy": np.array([10.0, 12.0, 11.0]),
        "lfu": np.array([15.0, 16.0, 14.0]),
        "oracle": np.array([9.0, 11.0, 10.0]),  # reads the future
        "fullcache": np.array([8.0, 9.0, 8.5]),  # a bound
        "maasn-da": np.array([12.0, 13.0, 12.5]),
    }
    out = summarise(values, ["greedy", "lfu", "oracle", "fullcache"], ["maasn-da"])
    assert out["best_heuristic"] == "greedy"
    paired = out["paired"]["maasn-da"]
    assert paired["vs"] == "greedy" and np.isclose(paired["mean"], 1.5)
    assert set(out["policies"]) == set(values)  # the references are still reported
