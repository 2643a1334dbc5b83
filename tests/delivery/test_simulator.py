import numpy as np
import pytest

from delivery.config import ScenarioConfig
from delivery.errors import CapacityError
from delivery.experiment import run_policy
from delivery.simulator import Simulator
from delivery.storage import storage_bytes


def test_capacity_validation(tiny_library, tiny_sim):
    sim, ch = tiny_sim(tiny_library, cache_bytes=3_000_000)
    with pytest.raises(CapacityError, match="EN 1 uses 4000000 bytes"):
        sim.step(np.array([[True, True, False], [True, False, True]]))
    with pytest.raises(CapacityError, match="shape"):
        sim.step(np.ones((2, 2), dtype=bool))
    with pytest.raises(CapacityError, match="boolean"):
        sim.step(np.full((2, 3), 2))
    assert sim.slot == 0  # a rejected placement does not advance the simulator


def test_fine_stores_shared_pb_once_coarse_per_model(tiny_library, tiny_sim):
    both = np.array([[True, True, True], [False, False, False]])  # m0 and m1 at EN 0
    member = tiny_library.membership()
    sizes = tiny_library.pb_sizes()
    assert storage_bytes(both, member, sizes, "fine")[0] == 6_000_000
    assert storage_bytes(both, member, sizes, "coarse")[0] == 7_000_000  # A stored twice
    fine, _ = tiny_sim(tiny_library, "fine", cache_bytes=6_500_000)
    fine.step(both)
    coarse, _ = tiny_sim(tiny_library, "coarse", cache_bytes=6_500_000)
    with pytest.raises(CapacityError, match="coarse accounting"):
        coarse.step(both)


def test_same_seed_same_numbers_and_same_scenario_for_every_policy(small_library):
    cfg = ScenarioConfig(n_users=8)
    a = run_policy(cfg, small_library, "lfu", 3, seed=11)
    b = run_policy(cfg, small_library, "lfu", 3, seed=11)
    assert a.slots == b.slots
    sims = [Simulator(cfg, small_library, np.random.default_rng(5)) for _ in range(2)]
    rng = np.random.default_rng(0)
    for _ in range(3):  # different placements, same users / requests / channels
        r0 = sims[0].step(sims[0].project(rng.uniform(size=(4, sims[0].n_pbs))))
        r1 = sims[1].step(np.zeros((4, sims[1].n_pbs), dtype=bool))
        assert (r0.requests == r1.requests).all()
        assert r0.delay_lower_bound_s == r1.delay_lower_bound_s  # same true channels
    other = Simulator(cfg, small_library, np.random.default_rng(6))
    assert not np.allclose(other.topology.user_xy, sims[0].topology.user_xy)


def test_noncoop_serves_from_home_only(small_library):
    cfg = ScenarioConfig(n_users=10, mode="noncoop", beamformer="mrt")
    sim = Simulator(cfg, small_library, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(3):
        placement = sim.project(rng.uniform(size=(4, sim.n_pbs)))
        requests_before = sim.slot
        r = sim.step(placement)
        assert r.backhaul_bytes == 0
        home = sim.topology.user_home
        units = sim._units(placement, np.where(placement, 0.0, np.inf), r.requests)
        for item in sim.last_outcome.schedule:
            assert item.serving == (int(home[units[item.unit].users[0]]),)
            assert set(home[units[item.unit].users]) == set(item.serving)
        assert r.hit_ratio_local == r.hit_ratio_edge
        assert sim.slot == requests_before + 1


def test_project_is_feasible_and_prefers_score_per_byte(small_library):
    for mode in ("fine", "coarse"):
        sim = Simulator(ScenarioConfig(mode=mode), small_library, np.random.default_rng(0))
        x = sim.project(np.random.default_rng(1).normal(size=(4, sim.n_pbs)))
        assert (storage_bytes(x, sim.membership, sim.pb_bytes, mode) <= sim.capacity_bytes).all()
        sim.check_placement(x)
    sim = Simulator(ScenarioConfig(), small_library, np.random.default_rng(0))
    assert not sim.project(-np.ones((4, sim.n_pbs))).any()  # nothing worth caching


def test_drift_changes_popularity():
    from delivery.demand.stationary import StationaryProcess as RequestProcess

    proc = RequestProcess(
        n_models=6, n_regions=2, gamma=0.8, drift_period=2, drift_swaps=2, rng=np.random.default_rng(0)
    )
    before = proc.popularity().copy()
    home = np.zeros(50, dtype=int)
    proc.draw(home)
    assert np.array_equal(proc.popularity(), before)
    proc.draw(home)
    assert not np.array_equal(proc.popularity(), before)
    assert np.allclose(proc.popularity().sum(axis=1), 1.0)
