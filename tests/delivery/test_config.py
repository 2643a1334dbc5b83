import numpy as np
import pytest

from delivery.config import ScenarioConfig, scenario_path
from delivery.errors import ConfigError
from delivery.simulator import Simulator
from pbkit.errors import PbkitError


def test_bundled_default_is_the_dataclass_default():
    assert ScenarioConfig.load(scenario_path("default")) == ScenarioConfig()
    small = ScenarioConfig.load(scenario_path("small"))
    assert (small.n_nodes, small.n_users) == (2, 6)


def test_noise_power_from_thermal_floor():
    cfg = ScenarioConfig()
    # -174 dBm/Hz + 80 dB (100 MHz) + 9 dB = -85 dBm
    assert 10 * np.log10(cfg.noise_w) + 30 == pytest.approx(-85.0)
    assert cfg.power_w == pytest.approx(1.0)


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"power_dbm": -80.0}, "power_dbm"),
        ({"csi_error": 1.5}, "csi_error"),
        ({"beamformer": "zf"}, "beamformer"),
        ({"n_users": 0}, "n_users"),
        ({"n_users": 2.5}, "n_users"),
        ({"isd_m": "far"}, "isd_m"),
        ({"cloud_bps": -1.0}, "cloud_bps"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, words):
    with pytest.raises(ConfigError) as info:
        ScenarioConfig().replace(**overrides)
    msg = str(info.value)
    assert words in msg and "\n" not in msg
    assert isinstance(info.value, PbkitError)


def test_load_yaml_and_toml(tmp_path):
    (tmp_path / "a.yaml").write_text("n_users: 7\nbeamformer: mrt\n")
    (tmp_path / "b.toml").write_text("n_users = 9\ncsi_error = 0.2\n")
    assert ScenarioConfig.load(tmp_path / "a.yaml").n_users == 7
    assert ScenarioConfig.load(tmp_path / "b.toml").csi_error == 0.2
    (tmp_path / "bad.yaml").write_text("n_users: 7\nspeed: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*speed"):
        ScenarioConfig.load(tmp_path / "bad.yaml")
    (tmp_path / "broken.toml").write_text("n_users = = 3\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        ScenarioConfig.load(tmp_path / "broken.toml")


def test_pb_larger_than_the_cache_is_uncacheable_not_refused(small_library):
    # every EN's cache is smaller than the largest PB: the scenario runs, the PB is never placed
    # and whoever needs it gets it from the cloud
    cfg = ScenarioConfig(n_users=8, cache_fraction=0.001, beamformer="mrt")
    sim = Simulator(cfg, small_library, np.random.default_rng(0))
    big = int(np.argmax(sim.pb_bytes))
    assert sim.pb_bytes[big] > sim.capacity_bytes[0]
    placement = sim.project(np.ones((sim.n_nodes, sim.n_pbs)))
    assert not placement[:, big].any()
    r = sim.step(placement)
    needers = sim.membership[r.requests][:, big]
    assert np.isfinite(r.user_delay_s).all()
    if needers.any():
        assert r.cloud_bytes >= sim.pb_bytes[big]
