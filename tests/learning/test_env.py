import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from learning.env import CacheEnv
from learning.features import CACHE, DROP, PULL0, effective_actions, observe, place


@pytest.mark.parametrize("baseline", [None, "greedy"])
def test_parallel_api(tiny_library, tiny_scenario, baseline):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=4, seed=0, baseline=baseline)
    parallel_api_test(env, num_cycles=10)


def test_shapes_masks_and_state(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=3, seed=0)
    obs, infos = env.reset(seed=5)
    lay = env.layout
    assert env.possible_agents == [f"en_{n}" for n in range(tiny_scenario.n_nodes)]
    for n, agent in enumerate(env.agents):
        assert obs[agent].shape == env.observation_space(agent).shape == (lay.n_pbs, obs[agent].shape[1])
        assert env.observation_space(agent).contains(obs[agent])
        mask = infos[agent]["action_mask"]
        assert mask.shape == (lay.n_pbs, lay.n_actions)
        assert mask[:, DROP].all()
        # pulls are allowed exactly toward real neighbours
        degree = int(lay.neighbours[n].sum())
        assert mask[:, PULL0 : PULL0 + degree].all() and not mask[:, PULL0 + degree :].any()
    assert env.state().shape == env.state_space.shape
    # the observation carries the placement: cache everything that fits, see it next slot
    obs, rew, term, trunc, info = env.step({a: np.full(lay.n_pbs, CACHE) for a in env.agents})
    placement = info["en_0"]["placement"]
    assert placement.any()
    assert np.array_equal(obs["en_0"][:, 0].astype(bool), placement[0])
    assert all(r < 0 for r in rew.values()) and not any(term.values()) and not any(trunc.values())
    env.step({a: np.zeros(lay.n_pbs, int) for a in env.agents})
    _, _, _, trunc, _ = env.step({a: np.zeros(lay.n_pbs, int) for a in env.agents})
    assert all(trunc.values()) and env.agents == []


def test_any_action_respects_capacity(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=50, seed=0)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    lay = env.layout
    for _ in range(30):
        actions = rng.integers(-3, lay.n_actions + 3, (lay.n_nodes, lay.n_pbs))  # includes invalid codes
        _, _, _, _, info = env.step_joint(actions, rng.random((lay.n_nodes, lay.n_pbs)))
        placement = info["en_0"]["placement"]
        assert (placement @ lay.pb_bytes <= lay.capacity).all()


def test_placement_fills_capacity_from_scores_with_keep_bias_and_pulls(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, seed=0)
    lay = env.layout
    actions = np.zeros((lay.n_nodes, lay.n_pbs), int)
    scores = np.full((lay.n_nodes, lay.n_pbs), -5.0)  # the actor wants nothing anywhere
    scores[0, 3] = 1.0
    none = np.zeros((lay.n_nodes, lay.n_pbs), bool)
    placement = place(lay, actions, scores, none, keep_bias=0.5)
    assert placement[0, 3]  # the best-scored PB is admitted first
    free = lay.capacity - placement.astype(np.int64) @ lay.pb_bytes
    assert (free < lay.pb_bytes.min()).all() or placement.all()  # and every cache is filled anyway
    # hysteresis: a held PB beats a slightly better-scored new one
    scores = np.zeros((lay.n_nodes, lay.n_pbs))
    scores[:, 1] = 0.3
    held = none.copy()
    held[:, 2] = True
    tight = lay.__class__(
        lay.pb_bytes, lay.membership, np.full(lay.n_nodes, lay.pb_bytes[[1, 2]].max()), lay.neighbours, lay.max_degree
    )
    assert lay.pb_bytes[1] + lay.pb_bytes[2] > tight.capacity[0]  # room for one of the two only
    assert place(tight, actions, scores, held, keep_bias=0.5)[0, 2]
    assert place(tight, actions, scores, held, keep_bias=0.0)[0, 1]
    # EN 1 asks its first neighbour to hold PB 5: that lifts PB 5 to the top of the neighbour's ranking
    idx, _ = lay.neighbour_index()
    target = idx[1, 0]
    actions[1, 5] = PULL0
    scores = np.zeros((lay.n_nodes, lay.n_pbs))
    scores[target, 5] = -0.9
    placement = place(tight, actions, scores, none, keep_bias=0.0)
    assert placement[target, 5]
    eff = effective_actions(lay, actions, placement)
    assert eff[1, 5] == (CACHE if placement[1, 5] else PULL0)
    assert (eff[placement] == CACHE).all()  # what was placed is recorded as cache
    placement[target, 5] = False
    placement[1, 5] = False
    assert effective_actions(lay, actions, placement)[1, 5] == DROP


def test_observe_batches(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, seed=0)
    env.reset(seed=2)
    env.step_joint(np.ones((env.layout.n_nodes, env.layout.n_pbs), int))
    snap = env.snapshot()
    single, state = observe(env.layout, snap)
    batch, bstate = observe(env.layout, {k: np.stack([v, v]) for k, v in snap.items()})
    assert np.allclose(batch[1], single) and np.allclose(bstate[0], state)


def test_branch_keeps_the_users_and_draws_fresh_channels(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, seed=0)
    env.reset(seed=4)
    env.step_joint(np.ones((env.layout.n_nodes, env.layout.n_pbs), int))
    twin = env.branch(99)
    assert np.array_equal(twin.view().user_home, env.view().user_home)
    assert np.array_equal(twin.snapshot()["placement"], env.snapshot()["placement"])
    requests = np.zeros(tiny_scenario.n_users, int)  # everyone asks for model 0
    _, _, _, _, info = twin.step_joint(np.ones((env.layout.n_nodes, env.layout.n_pbs), int), requests=requests)
    assert np.allclose(twin.snapshot()["last"][:, 1:], 0.0)
    assert env.slot == 1 and twin.slot == 2  # the real env did not move


def test_env_and_harness_share_the_seeding_rule(tiny_library, tiny_scenario):
    """Seed S of the environment is the scenario `pbkit sim run --seed S` runs (SeedSequence(S).spawn)."""
    from delivery.experiment import seed_streams
    from delivery.simulator import Simulator

    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=3, seed=7)
    harness = Simulator(tiny_scenario, tiny_library, seed_streams(7)[0])
    assert np.array_equal(env.sim.topology.gain_lin, harness.topology.gain_lin)
    other = Simulator(tiny_scenario, tiny_library, np.random.default_rng(7))  # the old, separate rule
    assert not np.array_equal(other.topology.gain_lin, harness.topology.gain_lin)
