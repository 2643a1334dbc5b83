"""Each request process's statistics match its definition; the truth references read is exact."""

import copy

import numpy as np
import pytest

from delivery.config import ScenarioConfig
from delivery.demand.diurnal import DiurnalProcess
from delivery.demand.lifecycle import LifecycleProcess, families
from delivery.demand.mobility import MobilityProcess
from delivery.demand.spreading import SpreadingProcess, hop_distance
from delivery.simulator import Simulator
from delivery.topology import build_topology


def _lifecycle(rng, n=60, rate=2.0, initial=0.5):
    family = np.array([0] * 30 + [1] * 30)
    family[30:] = 30
    is_base = np.zeros(n, dtype=bool)
    is_base[[0, 30]] = True
    return LifecycleProcess(n, 2, family, is_base, 0.8, rate, initial, 1.0, 8.0, 1.0, rng)


def test_lifecycle_releases_at_the_poisson_rate_and_bases_stay():
    p = _lifecycle(np.random.default_rng(0), rate=1.5)
    released = [np.isfinite(p.release).sum() - 2]  # derivatives out so far (bases are -inf)
    home = np.zeros(10, dtype=int)
    for _ in range(20):
        p.draw(home)
        released.append(int((np.isfinite(p.release) & ~p.is_base).sum()))
    new = released[-1] - released[0]
    assert released[0] == 29  # initial_share 0.5 of 58 derivatives, rounded
    assert 1.5 * 20 - 4 * np.sqrt(30) <= new <= min(29, 1.5 * 20 + 4 * np.sqrt(30))
    assert (p.weights()[p.is_base] > 0).all()
    assert (p.weights()[np.isposinf(p.release)] == 0).all()  # not yet released: never requested


def test_lifecycle_age_profile_rises_then_decays():
    p = _lifecycle(np.random.default_rng(1))
    i = int(np.nonzero(~p.is_base)[0][0])
    p.release[i] = 0.0
    g = [p.weights(slot=a)[i] / p.quality[i] for a in range(30)]
    peak = int(np.argmax(g))
    assert peak <= 2 and all(g[a] >= g[a + 1] for a in range(peak, 29)) and g[29] < 0.4 * g[peak]


def test_lifecycle_new_releases_favour_popular_bases():
    # family 0's base has almost all the quality: nearly every new release is one of its derivatives
    p = _lifecycle(np.random.default_rng(2), rate=3.0, initial=0.0)
    p.quality[:] = 1e-6
    p.quality[0] = 1.0
    before = np.isfinite(p.release) & ~p.is_base
    for _ in range(6):
        p.draw(np.zeros(4, dtype=int))
    new = np.isfinite(p.release) & ~p.is_base & ~before
    assert new.sum() >= 8 and (p.family[new] == 0).mean() >= 0.9


def test_draws_follow_the_popularity():
    p = _lifecycle(np.random.default_rng(3))
    pmf = p.popularity()[0]
    twin = copy.deepcopy(p)
    draws = twin.draw(np.zeros(20000, dtype=int))
    freq = np.bincount(draws, minlength=p.n_models) / 20000
    assert np.abs(freq - pmf).max() < 0.01


def test_families_from_library_kinds():
    fam, is_base = families(["base", "adapter", "partial-finetune", ""], [None, "b", "b", None], ["b", "a", "f", "x"])
    assert fam.tolist() == [0, 0, 0, 3] and is_base.tolist() == [True, False, False, False]


def test_diurnal_is_periodic_and_regions_are_offset():
    p = DiurnalProcess(12, 3, 0.8, 6, 0.8, np.random.default_rng(0))
    series = []
    for _ in range(13):
        series.append(p.popularity())
        p.draw(np.zeros(5, dtype=int))
    assert np.allclose(series[0], series[6]) and np.allclose(series[1], series[7])
    assert not np.allclose(series[0], series[3])
    assert not np.allclose(series[0][0], series[0][1])  # offsets between regions
    assert np.allclose(series[2].sum(axis=1), 1.0)


def test_spreading_reaches_neighbours_with_the_lag():
    topo = build_topology(np.random.default_rng(0), 4, 8, 250.0, 0.0, 10.0)
    hops = hop_distance(topo.neighbours)
    p = SpreadingProcess(30, 4, topo.neighbours, 0.8, 100, 2, 3, 0.5, np.random.default_rng(1))
    start, origin, model = p.trends[0]
    share = []
    for _ in range(12):
        share.append(p.popularity()[:, model])
        p.draw(np.zeros(4, dtype=int))
    share = np.array(share)  # (slots, regions)
    for n in range(4):
        on = (np.arange(12) >= 2 * hops[origin, n]) & (np.arange(12) < 2 * hops[origin, n] + 3)
        assert (share[on, n] >= 0.5).all()
        assert (share[~on, n] < 0.5).all()


def test_mobility_moves_users_at_their_speed_and_keeps_tastes():
    topo = build_topology(np.random.default_rng(0), 4, 30, 250.0, 0.0, 10.0)
    p = MobilityProcess(20, 4, topo.node_xy, topo.user_xy, 250.0, 10.0, 0.8, 50.0, np.random.default_rng(2))
    taste = p.taste.copy()
    homes = [p.homes()]
    xy = p.positions()
    for _ in range(15):
        p.draw(homes[-1])
        step = np.linalg.norm(p.positions() - xy, axis=1)
        assert (step <= 75.0 + 1e-6 + 10.0).all()  # speed <= 1.5 x 50 m (+ the min-distance push)
        xy = p.positions()
        homes.append(p.homes())
    assert np.array_equal(p.taste, taste)
    assert (np.array(homes) != homes[0]).any()  # somebody changed cell


def test_simulator_follows_moving_users(small_library):
    cfg = ScenarioConfig(n_users=12, beamformer="mrt", demand="mobility", mobility_step_m=120.0)
    sim = Simulator(cfg, small_library, np.random.default_rng(0))
    homes = [sim.topology.user_home.copy()]
    for _ in range(4):
        sim.step(np.zeros((sim.n_nodes, sim.n_pbs), dtype=bool))
        homes.append(sim.topology.user_home.copy())
        assert np.array_equal(sim.topology.user_xy, sim.requests.positions())
    assert (np.array(homes) != homes[0]).any()


@pytest.mark.parametrize("demand", ["stationary", "lifecycle", "diurnal", "spreading", "mobility"])
def test_truth_demand_is_the_next_slots_popularity(demand, small_library):
    cfg = ScenarioConfig(n_users=10, beamformer="mrt", demand=demand)
    sim = Simulator(cfg, small_library, np.random.default_rng(4))
    sim.step(np.zeros((sim.n_nodes, sim.n_pbs), dtype=bool))
    predicted = sim.policy_view().truth.demand(sim.slot + 1)
    predicted_requests = sim.policy_view().truth.requests(sim.slot + 1)
    sim.step(np.zeros((sim.n_nodes, sim.n_pbs), dtype=bool))  # the truth changed nothing
    home = sim.topology.user_home
    expected = np.zeros_like(predicted)
    np.add.at(expected, home, sim.requests.user_popularity(home))
    assert np.allclose(predicted, expected)
    assert np.array_equal(predicted_requests, sim.step(np.zeros((sim.n_nodes, sim.n_pbs), dtype=bool)).requests)
