import os
import sys

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # delivery never imports torch; keep it small if another test did
    sys.modules["torch"].set_num_threads(1)

from delivery.channels import SlotChannels  # noqa: E402
from delivery.config import ScenarioConfig  # noqa: E402
from delivery.simulator import Simulator  # noqa: E402
from delivery.topology import Topology  # noqa: E402
from pbkit.library import ModelEntry, PBEntry, PBLibrary, synthetic_library  # noqa: E402


@pytest.fixture
def tiny_library() -> PBLibrary:
    """3 PBs: A (1 MB) shared by both models, B (2 MB) of model 0, C (3 MB) of model 1."""
    return PBLibrary(
        pbs=[PBEntry("A", 1_000_000), PBEntry("B", 2_000_000), PBEntry("C", 3_000_000)],
        models=[ModelEntry("m0", ("A", "B")), ModelEntry("m1", ("A", "C"))],
    )


@pytest.fixture
def small_library() -> PBLibrary:
    return synthetic_library(
        np.random.default_rng(3), families=2, models_per_family=3, base_pbs=6, own_pbs=2, mean_pb_bytes=4e6
    )


@pytest.fixture
def tiny_sim():
    return _tiny_sim


def _tiny_sim(library: PBLibrary, mode: str = "fine", cache_bytes: int = 3_000_000):
    """2 ENs with 1 antenna, user 0 at EN 0 and user 1 at EN 1; each hears only its own EN
    (a, b set so that SNR_0 = 1023 and SNR_1 = 31 at full power), no CSI error, MRT, and no
    effective rate cap (10 b/s/Hz would be capped at 7.4063 by default)."""
    cfg = ScenarioConfig(
        n_nodes=2,
        antennas=1,
        n_users=2,
        bandwidth_hz=1e6,
        csi_error=0.0,
        cache_bytes=cache_bytes,
        beamformer="mrt",
        mode=mode,
        max_spectral_efficiency=64.0,
    )
    topo = Topology(
        node_xy=np.array([[0.0, 0.0], [250.0, 0.0]]),
        user_xy=np.array([[10.0, 0.0], [240.0, 0.0]]),
        distance_m=np.array([[10.0, 240.0], [240.0, 10.0]]),
        gain_db=np.array([[-80.0, -100.0], [-100.0, -80.0]]),
        user_home=np.array([0, 1]),
        neighbours=np.array([[False, True], [True, False]]),
    )
    sim = Simulator(cfg, library, np.random.default_rng(0), topology=topo)
    a = np.sqrt(1023 * cfg.noise_w / cfg.power_w)
    b = np.sqrt(31 * cfg.noise_w / cfg.power_w)
    h = np.array([[[a], [0.0]], [[0.0], [b]]], dtype=complex)
    return sim, SlotChannels(h_est=h, h_true=h)
