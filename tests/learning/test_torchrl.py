"""The learner's environment through TorchRL (benchmarks/torchrl_mappo.py): specs check, and one
collector batch trains MAPPO's loss. Skipped when the `marl` extra is not installed."""

import numpy as np
import pytest

pytest.importorskip("torchrl")


# TorchRL warns that it is tested with PettingZoo 1.24.3 only; the env passes its spec check here.
@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested using version:UserWarning")
def test_mappo_runs_through_torchrl_on_the_env(tiny_library, tiny_scenario):
    from torchrl.envs import PettingZooWrapper
    from torchrl.envs.utils import MarlGroupMapType, check_env_specs

    from benchmarks import torchrl_mappo
    from learning.env import CacheEnv

    env = CacheEnv(tiny_library, tiny_scenario, episode_slots=4, seed=0, baseline="lfu")
    wrapped = PettingZooWrapper(
        env=env, group_map=MarlGroupMapType.ALL_IN_ONE_GROUP, categorical_actions=True, done_on_any=True, seed=0
    )
    check_env_specs(wrapped)
    policy, critic = torchrl_mappo.build(wrapped, 8, centralised=True)
    td = wrapped.rollout(4, policy)
    assert td["agents", "action"].shape == (4, tiny_scenario.n_nodes, env.layout.n_pbs)
    mask = td["agents", "action_mask"].numpy()
    picked = np.take_along_axis(mask, td["agents", "action"].numpy()[..., None], -1)
    assert picked.all()  # the policy samples allowed codes only
