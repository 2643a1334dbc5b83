import numpy as np
import pytest

from delivery.config import ScenarioConfig
from delivery.errors import ConfigError
from delivery.optimal import enumerate_optimal, solve_milp
from delivery.policies import greedy_proxy, make_policy, policy_names, register_policy
from delivery.proxy import ProxyInstance, proxy_cost, proxy_instance
from delivery.simulator import Simulator
from delivery.storage import fill_in_order, storage_bytes

BUILTIN = [n for n in policy_names() if n != "fullcache"]  # fullcache runs on a larger cache (test_references)
KWARGS = {"optimal": {"time_limit_s": 2.0}, "search": {"moves": 1}}


@pytest.mark.parametrize("name", BUILTIN)
def test_policies_return_feasible_placements(name, small_library):
    policy = make_policy(name, **KWARGS.get(name, {}))
    mode = getattr(policy, "mode", None) or "fine"
    # 0.3 per EN: room for whole models of the small library (coarse caches nothing at 0.125)
    cfg = ScenarioConfig(n_users=8, mode=mode, beamformer="mrt", cache_fraction=0.3)
    sim = Simulator(cfg, small_library, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(2):
        view = sim.policy_view()
        x = policy.place(view, rng)
        assert x.shape == (sim.n_nodes, sim.n_pbs) and x.dtype == bool
        assert (storage_bytes(x, sim.membership, sim.pb_bytes, mode) <= sim.capacity_bytes).all()
        assert x.any()
        sim.step(x)


def test_coarse_policy_caches_whole_models(small_library):
    sim = Simulator(ScenarioConfig(mode="coarse"), small_library, np.random.default_rng(0))
    x = make_policy("coarse").place(sim.policy_view(), np.random.default_rng(0))
    member = sim.membership
    for n in range(sim.n_nodes):
        whole = member[(member & ~x[n]).sum(axis=1) == 0]
        assert np.array_equal(whole.any(axis=0), x[n])  # every cached PB belongs to a whole model


def tiny_instance(rng, n=2, j=3):
    sizes = rng.integers(1, 10, size=j)
    return ProxyInstance(
        weight=rng.uniform(0, 3, size=(n, j)),
        t_backhaul=sizes * 0.01,
        t_cloud=0.02 + sizes * 0.05,
        pb_bytes=sizes,
        capacity=np.full(n, int(sizes.sum() // 2)),
        migrate=True,
    )


def test_milp_matches_enumeration_and_beats_greedy():
    rng = np.random.default_rng(0)
    for _ in range(12):
        inst = tiny_instance(rng, n=2, j=4)
        exact = enumerate_optimal(inst)
        milp = solve_milp(inst, time_limit_s=10, rel_gap=0.0)
        assert milp.cost == pytest.approx(exact.cost, rel=1e-7, abs=1e-9)
        assert exact.cost <= proxy_cost(inst, greedy_proxy(inst)) + 1e-12


def test_optimal_not_worse_than_greedy_on_a_library(small_library):
    sim = Simulator(ScenarioConfig(n_users=8), small_library, np.random.default_rng(0))
    sim.step(np.zeros((4, sim.n_pbs), dtype=bool))
    inst = proxy_instance(sim.policy_view())
    sol = solve_milp(inst, time_limit_s=2)
    greedy = proxy_cost(inst, greedy_proxy(inst))
    assert sol.bound <= sol.cost <= greedy + 1e-9


def test_register_policy_and_unknown_name():
    class Nothing:
        name = "nothing"

        def place(self, view, rng):
            return np.zeros_like(view.placement)

    register_policy("nothing-test", Nothing)
    assert "nothing-test" in policy_names()
    assert make_policy("nothing-test").name == "nothing"
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        make_policy("nope")


def first_fit_loop(order, sizes, capacity):
    taken, free = [], capacity
    for j in order:
        if sizes[j] <= free:
            taken.append(j)
            free -= sizes[j]
    return taken


def test_fill_in_order_is_the_item_by_item_first_fit():
    """storage.fill_in_order (vectorised: repeated prefix fills) admits exactly what the loop does."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 30))
        sizes = rng.integers(0, 100, n)
        order = rng.permutation(n)
        capacity = int(rng.integers(0, 600))
        expected = np.zeros(n, dtype=bool)
        expected[first_fit_loop(order, sizes, capacity)] = True
        assert np.array_equal(fill_in_order(order, sizes, capacity), expected)
