"""The one settings loader (bundled name, file or defaults, dotted overrides) and the one
`--seeds` grammar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pbkit.common.seeds import SeedError, check_seed, format_seeds, parse_seeds
from pbkit.common.settings import apply_overrides, find_settings_file, load_settings
from pbkit.errors import PbkitError


class E(PbkitError):
    pass


@dataclass(frozen=True)
class Knobs:
    a: int = 1
    b: float = 0.5
    group: dict[str, Any] = field(default_factory=lambda: {"x": 1})


def test_seeds_grammar():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("3", first=10) == [10, 11, 12]
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("7-7") == [7]
    assert parse_seeds("0,3,5") == [0, 3, 5] and parse_seeds(" 2000, 2001 ") == [2000, 2001]
    for bad in ("-5", "0", "3-1", "1,,2", "1,a", "", "1.5", "-1-3"):
        with pytest.raises(SeedError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(SeedError, match="--first-seed -1"):
        parse_seeds("2", first=-1)
    with pytest.raises(SeedError):
        check_seed(-1)
    assert format_seeds([3, 4, 5]) == "3-5" and format_seeds([1, 5]) == "1,5" and format_seeds([2]) == "2"
    assert parse_seeds(format_seeds([3, 4, 5])) == [3, 4, 5]


def test_bundled_name_file_or_a_clear_miss(tmp_path):
    bundled = {"small": tmp_path / "small.yaml"}
    (tmp_path / "small.yaml").write_text("a: 2\n")
    (tmp_path / "mine.toml").write_text("b = 0.25\n")
    assert find_settings_file("small", bundled, "scenario", E) == tmp_path / "small.yaml"
    with pytest.raises(E, match=r"^/nowhere/x.yaml: no such scenario file$"):
        find_settings_file("/nowhere/x.yaml", bundled, "scenario", E)
    with pytest.raises(E, match=r"smal: no such file and not a bundled scenario \(have: small\)"):
        find_settings_file("smal", bundled, "scenario", E)
    with pytest.raises(E, match="is a directory"):
        find_settings_file(tmp_path, bundled, "scenario", E)
    assert load_settings(Knobs, None, error=E, kind="k") == Knobs()
    assert load_settings(Knobs, "small", error=E, kind="k", bundled=bundled).a == 2
    assert load_settings(Knobs, tmp_path / "mine.toml", error=E, kind="k").b == 0.25


def test_overrides_route_dotted_keys_and_name_their_option():
    got = load_settings(Knobs, None, error=E, kind="k", overrides=["a=3", "group.y=2", "group.x=5"])
    assert got == Knobs(a=3, group={"x": 5, "y": 2})
    with pytest.raises(E, match=r"^--grid/--set: unknown key 'c'$"):
        load_settings(Knobs, None, error=E, kind="k", overrides=["c=1"], where="--grid/--set")
    with pytest.raises(E, match="'a' is not a group of settings"):
        apply_overrides({"a": 1}, {"a.b": 2}, E)
    with pytest.raises(E, match="--set: a = 'many' is not an integer"):
        load_settings(Knobs, None, error=E, kind="k", overrides=["a=many"])


def test_scenario_and_training_config_use_the_loader():
    from delivery.config import ScenarioConfig
    from learning.config import LearnConfigError, TrainConfig

    assert ScenarioConfig.build("small", ["n_users=3"]).n_users == 3
    assert ScenarioConfig.build() == ScenarioConfig.build("default")
    cfg = TrainConfig.build("quick", ["scenario.n_users=6", "gamma=0.7"])
    assert cfg.scenario["n_users"] == 6 and cfg.gamma == 0.7 and cfg.scenario["beamformer"] == "mrt"
    with pytest.raises(LearnConfigError, match="seed = -1: seeds are non-negative"):
        TrainConfig.build(None, ["seed=-1"])
