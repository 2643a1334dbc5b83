import pytest

from learning.config import LearnConfigError, TrainConfig, load_config


def test_bundled_configs_and_overrides():
    quick = load_config("quick")
    assert quick.total_steps % quick.episode_slots == 0
    cfg = quick.with_overrides(["gamma=0.7", "mixer=vdn", "scenario.n_users=6", "eval_seeds=[1, 2]", "da=false"])
    assert cfg.gamma == 0.7 and cfg.mixer == "vdn" and cfg.scenario["n_users"] == 6
    assert cfg.eval_seeds == (1, 2) and cfg.da is False
    assert load_config("full").total_steps > quick.total_steps


@pytest.mark.parametrize("pair,message", [
    ("nosuch=1", "unknown key"), ("gamma=high", "expected float"), ("mixer=qplex", "mixer"),
    ("eval_every=7", "multiple of episode_slots"), ("gamma", "key=value"),
])
def test_bad_overrides_name_the_problem(pair, message):
    with pytest.raises(LearnConfigError, match=message):
        TrainConfig().with_overrides([pair])


def test_bad_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("gamma: 0.9\nbogus: 1\n")
    with pytest.raises(LearnConfigError, match="unknown key 'bogus'"):
        load_config(path)


def test_scenario_overrides_are_checked():
    from learning.trainer import scenario_of

    assert scenario_of(TrainConfig().with_overrides(["scenario.n_users=6"])).n_users == 6
    with pytest.raises(LearnConfigError, match="mode"):
        scenario_of(TrainConfig().with_overrides(["scenario.mode=coarse"]))
    from delivery.errors import ConfigError

    with pytest.raises(ConfigError, match="nonsense"):
        scenario_of(TrainConfig().with_overrides(["scenario.nonsense=1"]))
