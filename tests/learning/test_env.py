import numpy as np
from pettingzoo.test import parallel_api_test

from learning.env import CacheEnv
from learning.features import CACHE, DROP, PULL0, effective_actions, observe, project


def test_parallel_api(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=4, seed=0)
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
        assert mask[:, PULL0:PULL0 + degree].all() and not mask[:, PULL0 + degree:].any()
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


def test_projection_orders_by_priority_and_honours_pulls(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, seed=0)
    lay = env.layout
    actions = np.zeros((lay.n_nodes, lay.n_pbs), int)
    actions[0, :] = CACHE
    priority = np.zeros((lay.n_nodes, lay.n_pbs))
    priority[0, 3] = 1.0
    placement = project(lay, actions, priority)
    assert placement[0, 3]                       # the most confident PB is admitted first
    assert placement[0].sum() < lay.n_pbs       # capacity binds
    assert not placement[1:].any()
    # EN 1 asks neighbour 0 (its first neighbour) to hold PB 5; EN 0 otherwise drops it
    idx, _ = lay.neighbour_index()
    target = idx[1, 0]
    actions = np.zeros_like(actions)
    actions[1, 5] = PULL0
    placement = project(lay, actions)
    assert placement[target, 5] and placement.sum() == 1
    eff = effective_actions(lay, actions, placement)
    assert eff[1, 5] == PULL0
    placement[target, 5] = False
    assert effective_actions(lay, actions, placement)[1, 5] == DROP


def test_observe_batches(tiny_library, tiny_scenario):
    env = CacheEnv(tiny_library, tiny_scenario, seed=0)
    env.reset(seed=2)
    env.step_joint(np.ones((env.layout.n_nodes, env.layout.n_pbs), int))
    p, e, last, u = env.compact()
    single, state = observe(env.layout, p, e, last, u)
    batch, bstate = observe(env.layout, np.stack([p, p]), np.stack([e, e]), np.stack([last, last]), np.stack([u, u]))
    assert np.allclose(batch[1], single) and np.allclose(bstate[0], state)
