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
    """Mechanics tests want every PB to fit a cache: the earlier storage regime (0.3), not the
    default's scarce storage (0.03 of the unique bytes is below most of the tiny library's PBs)."""
    return ScenarioConfig(beamformer="mrt", n_users=8, cache_fraction=0.3, demand="stationary")
