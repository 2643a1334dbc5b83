"""MAASN-DA's inputs: no heuristic's placement in any feature, agents act on local inputs only,
and the common-random-numbers baseline replays the very same slot."""

import numpy as np
import pytest

import delivery.policies as policies
from learning.baseline import replay_slot, twin
from learning.config import TrainConfig
from learning.env import CacheEnv
from learning.features import OWN_FEATURES, observe
from learning.policy import LearnedPolicy
from learning.trainer import Trainer


@pytest.fixture
def heuristics_raise(monkeypatch):
    """Every heuristic of delivery.policies raises when asked for a placement or its proxy."""

    def boom(*args, **kwargs):
        raise AssertionError("a heuristic was consulted")

    monkeypatch.setattr(policies, "greedy_proxy", boom)
    for name in dir(policies):
        obj = getattr(policies, name)
        if isinstance(obj, type) and hasattr(obj, "place"):
            monkeypatch.setattr(obj, "place", boom)
    import delivery.proxy

    monkeypatch.setattr(delivery.proxy, "proxy_instance", boom)


@pytest.mark.parametrize("algorithm", ["facmac", "value"])
def test_env_learner_and_policy_run_without_any_heuristic(
    tiny_library, tiny_scenario, tmp_path, heuristics_raise, algorithm
):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=3, seed=0)  # no reward baseline
    env.reset(seed=1)
    for _ in range(3):
        env.step_joint(np.ones((env.layout.n_nodes, env.layout.n_pbs), int))
    cfg = TrainConfig(
        total_steps=20,
        eval_every=20,
        warmup_steps=5,
        actor_delay=0,
        eval_slots=3,
        val_seeds=(1000,),
        reward_baseline="",
        algorithm=algorithm,
        scenario={"beamformer": "mrt", "n_users": 8},
    )
    trainer = Trainer(cfg, tiny_library, tmp_path / "run", progress=False)
    trainer.run()  # acting, updating, validating: the learned policy's observations too
    assert trainer.step == 20
    policy = trainer.policy()
    assert isinstance(policy, LearnedPolicy)


def test_an_agents_observation_ignores_non_neighbours(tiny_library):
    from delivery.config import ScenarioConfig

    # 7 ENs on the hexagon: the ring ENs are not all neighbours of each other
    scenario = ScenarioConfig(beamformer="mrt", n_users=14, n_nodes=7)
    env = CacheEnv(tiny_library, scenario, episode_slots=5, seed=0)
    env.reset(seed=2)
    for _ in range(2):
        env.step_joint(np.random.default_rng(0).integers(0, 2, (env.layout.n_nodes, env.layout.n_pbs)))
    lay = env.layout
    pairs = [(n, m) for n in range(lay.n_nodes) for m in range(lay.n_nodes) if n != m and not lay.neighbours[n, m]]
    assert pairs, "the scenario has no non-neighbour pair"
    snap = env.snapshot()
    obs, state = observe(lay, snap)
    rng = np.random.default_rng(3)
    for n, m in pairs[:6]:
        other = {k: np.array(v, copy=True) for k, v in snap.items()}
        other["placement"][m] = ~other["placement"][m]
        for key in ("ema", "last", "cum", "forecast"):
            other[key][m] = rng.dirichlet(np.ones(lay.n_models))
        other["age"][m] = rng.integers(0, 30, lay.n_models)
        other["users"][m] = other["users"][m] + 5
        obs2, state2 = observe(lay, other)
        assert np.array_equal(obs2[n], obs[n]), (n, m)
        assert not np.array_equal(obs2[m], obs[m])  # m's own observation did change
        assert not np.array_equal(state2, state)  # the critic's global state sees it
    # and a neighbour's change does reach the agent, in the neighbour columns only
    n = 0
    m = int(np.flatnonzero(lay.neighbours[n])[0])
    other = {k: np.array(v, copy=True) for k, v in snap.items()}
    other["placement"][m] = ~other["placement"][m]
    obs2, _ = observe(lay, other)
    assert np.array_equal(obs2[n][:, :OWN_FEATURES], obs[n][:, :OWN_FEATURES])
    assert not np.array_equal(obs2[n], obs[n])


def test_replay_gives_the_same_slot_twice(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=5, seed=0)
    env.reset(seed=4)
    rng = np.random.default_rng(1)
    for _ in range(2):
        env.step_joint(rng.integers(0, 2, (env.layout.n_nodes, env.layout.n_pbs)))
    placement = env.sim.placement.copy()
    placement[:, : env.layout.n_pbs // 2] = False
    first = replay_slot(env.sim, placement)
    second = replay_slot(env.sim, placement)
    real = env.sim.step(placement)
    for a in (first, second):
        assert np.array_equal(a.user_delay_s, real.user_delay_s)
        assert np.array_equal(a.requests, real.requests)
    # the copy shares nothing mutable: the original went on, the copies did not move it
    assert env.sim.slot == first.slot + 1
    assert twin(env.sim).slot == env.sim.slot


def test_reference_track_keeps_its_own_placement(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=6, seed=0, baseline="lfu")
    env.reset(seed=5)
    n, j = env.layout.n_nodes, env.layout.n_pbs
    references = []
    for _ in range(4):
        _, rew, _, _, info = env.step_joint(np.zeros((n, j), int))  # the agents cache nothing
        i = info["en_0"]
        assert rew["en_0"] == pytest.approx((i["reference_delay_s"] - i["mean_delay_s"]) / env.d_ref)
        references.append(i["reference_delay_s"])
    assert env.reference.placement.any()  # lfu filled its caches on its own track
    # lfu run for real on the same scenario seed has exactly the reference's delays
    plain = CacheEnv(tiny_library, tiny_scenario, episode_slots=6, seed=0)
    plain.reset(seed=5)
    lfu = policies.make_policy("lfu")
    rng = np.random.default_rng(0)
    own = [plain.step_placement(lfu.place(plain.view(), rng))[4]["en_0"]["mean_delay_s"] for _ in range(4)]
    assert own == references
