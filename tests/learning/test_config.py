import pytest

from learning.config import LearnConfigError, TrainConfig, load_config
from pbkit.common.settings import load_typed, parse_set_overrides


def test_bundled_configs_and_overrides():
    quick = load_config("quick")
    assert quick.total_steps % quick.episode_slots == 0
    cfg = quick.with_overrides(["gamma=0.7", "mixer=vdn", "scenario.n_users=6", "val_seeds=[1, 2]", "da=false"])
    assert cfg.gamma == 0.7 and cfg.mixer == "vdn" and cfg.scenario["n_users"] == 6
    assert cfg.val_seeds == (1, 2) and cfg.da is False
    assert load_config("full").total_steps > quick.total_steps
    assert load_config(None) == load_config("full")  # `learn train` without --config is the full run
    assert load_config("smoke").total_steps < quick.total_steps  # `learn report --quick` trains this


@pytest.mark.parametrize(
    "pair,message",
    [
        ("nosuch=1", "unknown key"),
        ("gamma=high", "not a number"),
        ("mixer=qplex", "mixer"),
        ("algorithm=ppo", "algorithm"),
        ("score_scale=z", "score_scale"),
        ("update_every=0", "update_every"),
        ("eval_every=7", "multiple of episode_slots"),
        ("gamma", "key=value"),
        ("batch_size=1.5", "not an integer"),
        ("da=1", "true or false"),
        ("val_seeds=[1, x]", "not an integer"),
    ],
)
def test_bad_overrides_name_the_problem(pair, message):
    with pytest.raises(LearnConfigError, match=message):
        TrainConfig().with_overrides([pair])


def test_yaml_numbers_without_a_dot_are_floats(tmp_path):
    """PyYAML reads `1e-3` as a string; float fields accept it, other fields refuse it clearly."""
    path = tmp_path / "c.yaml"
    path.write_text("lr_actor: 1e-3\nlr_critic: 3e-4\n")
    cfg = load_config(path)
    assert cfg.lr_actor == 0.001 and isinstance(cfg.lr_critic, float)
    path.write_text("total_steps: 1e3\n")
    with pytest.raises(LearnConfigError, match=r"c.yaml: total_steps = '1e3' is not an integer"):
        load_config(path)


def test_bad_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("gamma: 0.9\nbogus: 1\n")
    with pytest.raises(LearnConfigError, match="unknown key 'bogus'"):
        load_config(path)


def test_one_loader_serves_the_scenario_too():
    from delivery.config import ScenarioConfig
    from delivery.errors import ConfigError

    assert ScenarioConfig.build(None, ["cache_fraction=2e-1", "n_users=6"]).cache_fraction == 0.2
    with pytest.raises(ConfigError, match="n_users = 'many' is not an integer"):
        ScenarioConfig.build(None, ["n_users=many"])
    assert load_typed(ScenarioConfig, {"csi_error": "5e-2"}, "x", ConfigError).csi_error == 0.05
    assert parse_set_overrides(["a.b=1", "c= [1, 2]"], ConfigError) == {"a.b": 1, "c": [1, 2]}


def test_scenario_overrides_are_checked():
    from learning.trainer import scenario_of

    assert scenario_of(TrainConfig().with_overrides(["scenario.n_users=6"])).n_users == 6
    with pytest.raises(LearnConfigError, match="mode"):
        scenario_of(TrainConfig().with_overrides(["scenario.mode=coarse"]))
    from delivery.errors import ConfigError

    with pytest.raises(ConfigError, match="nonsense"):
        scenario_of(TrainConfig().with_overrides(["scenario.nonsense=1"]))
