"""The demand oracles of delivery.references (the headroom references of `learn report`)."""

import numpy as np

from delivery.config import ScenarioConfig
from delivery.experiment import run_policy
from delivery.references import TruePopularityGreedy
from delivery.simulator import Simulator


def _scenario() -> ScenarioConfig:
    return ScenarioConfig(beamformer="mrt", n_users=8, cache_fraction=0.3, demand="stationary")


def test_clairvoyant_sees_the_requests_the_run_draws(small_library):
    """The clairvoyant oracle's demand is the slot's real requests: its local hit ratio is at
    least greedy's (it caches for exactly who will ask)."""
    oracle = run_policy(_scenario(), small_library, "greedy-clairvoyant", 4, 5).summary()
    greedy = run_policy(_scenario(), small_library, "greedy", 4, 5).summary()
    assert oracle["hit_ratio_local"] >= greedy["hit_ratio_local"]


def test_truepop_reads_a_distribution_and_changes_nothing(small_library):
    sim = Simulator(_scenario(), small_library, np.random.default_rng(0))
    view = sim.policy_view()
    pop = view.truth.popularity()
    assert np.allclose(pop.sum(axis=1), 1.0)
    before = sim.requests.rng.bit_generator.state
    TruePopularityGreedy().place(view)
    assert sim.requests.rng.bit_generator.state == before  # asking the truth draws nothing
