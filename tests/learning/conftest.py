import numpy as np
import pytest
import torch

from delivery.config import ScenarioConfig
from pbkit.library import synthetic_library

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_library():
    """20 PBs, 8 models in two families: small enough for seconds-long training."""
    return synthetic_library(np.random.default_rng(7), families=2, models_per_family=3, base_pbs=4, own_pbs=1)


@pytest.fixture(scope="session")
def tiny_scenario():
    # the regime these tests were written in (0.3 per EN, stationary requests): the tiny library
    # has PBs above 0.03 of its bytes, which the default regime of issue 15 makes uncacheable
    return ScenarioConfig(beamformer="mrt", n_users=8, cache_fraction=0.3, demand="stationary")
