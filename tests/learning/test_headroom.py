import numpy as np

from learning.evaluate import run_seed
from learning.headroom import OracleGreedy


def test_oracle_twin_sees_the_requests_the_harness_draws(tiny_library, tiny_scenario):
    """The clairvoyant oracle's demand equals the slot's real requests: its local hit ratio is
    at least greedy's on every slot (it caches for exactly who will ask)."""
    oracle = run_seed(
        tiny_scenario,
        tiny_library,
        "greedy-clairvoyant",
        lambda: OracleGreedy(tiny_scenario, tiny_library, 5, "greedy-clairvoyant"),
        4,
        5,
    )
    greedy = run_seed(tiny_scenario, tiny_library, "greedy", None, 4, 5)
    assert oracle["hit_ratio_local"] >= greedy["hit_ratio_local"]
    policy = OracleGreedy(tiny_scenario, tiny_library, 5, "greedy-truepop")
    pop = policy.twin.requests.popularity()
    assert np.allclose(pop.sum(axis=1), 1.0)
