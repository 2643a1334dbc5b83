"""Report plans and training configs as settings of the one loader: bundled files, round trips,
`--set` into typed fields, one-line errors naming the key, and the training scenario's layers."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from learning.config import TrainConfig
from learning.report import ReportPlan, ReportPlanError, bundled_report_plans
from pbkit.cli import main


def test_bundled_full_plan_is_the_defaults_and_every_plan_round_trips(tmp_path):
    assert set(bundled_report_plans()) >= {"quick", "full"}
    assert ReportPlan.build("full") == ReportPlan()
    quick = ReportPlan.build("quick")
    assert quick.train_config == "smoke" and quick.eval_slots == 2 and not quick.headroom
    path = tmp_path / "mine.yaml"
    changed = dataclasses.replace(quick, eval_seeds=(7, 9), scenario={"n_users": 8}, evaluated=("maasn-da",))
    path.write_text(yaml.safe_dump(dataclasses.asdict(changed)))
    assert ReportPlan.build(path) == changed


def test_unknown_plan_key_is_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("eval_slots: 3\ncapacitys: [0.1]\n")
    with pytest.raises(ReportPlanError, match=r"p\.yaml: unknown key 'capacitys'"):
        ReportPlan.build(path)
    assert main(["learn", "report", "--library", "synthetic", "--out", str(tmp_path / "r"), "--set", "slotz=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'slotz'" in err
    assert not (tmp_path / "r").exists()


def test_set_of_tuple_fields_takes_lists_commas_and_the_seeds_grammar():
    plan = ReportPlan.build(
        "quick", ["capacities=0.1,0.2", "csi_errors=[0.05]", "train_seeds=0-2", "variants=maasn-da", "optimum_seeds="]
    )
    assert plan.capacities == (0.1, 0.2) and plan.csi_errors == (0.05,)
    assert plan.train_seeds == (0, 1, 2) and plan.variants == ("maasn-da",) and plan.optimum_seeds == ()
    with pytest.raises(ReportPlanError, match="capacities"):
        ReportPlan.build("quick", ["capacities=0.1,big"])
    with pytest.raises(ReportPlanError, match="eval_seeds"):
        ReportPlan.build("quick", ["eval_seeds=-3"])
    with pytest.raises(ReportPlanError, match="maasn-xyz"):
        ReportPlan.build("quick", ["variants=maasn-da,maasn-xyz"])


def test_plan_scenario_layers_file_keys_then_set():
    plan = ReportPlan.build("quick", ["scenario.beamformer=mrt"], scenario="small")
    assert plan.scenario["n_users"] == 6 and plan.scenario["beamformer"] == "mrt"  # small.yaml says robust


def test_quick_is_config_quick(tmp_path, capsys):
    args = ["learn", "report", "--library", "synthetic", "--out", str(tmp_path / "r")]
    assert main([*args, "--quick", "--config", "full"]) == 2
    assert "--quick" in capsys.readouterr().err


def test_train_scenario_precedence(tmp_path):
    """config's scenario, then the --scenario file's keys, then --set scenario.k=v."""
    config = tmp_path / "c.yaml"
    config.write_text("scenario: {beamformer: mrt, n_users: 12, antennas: 3}\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("n_users: 5\nantennas: 2\n")
    cfg = TrainConfig.build(config, ["scenario.antennas=6"], scenario=scenario)
    assert cfg.scenario == {"beamformer": "mrt", "n_users": 5, "antennas": 6}
    assert TrainConfig.build("quick", scenario="small").scenario["beamformer"] == "robust"  # small.yaml writes it
    assert TrainConfig.build(None, scenario=scenario).scenario == {"beamformer": "mrt", "n_users": 5, "antennas": 2}


def test_train_scenario_errors_are_one_line(tmp_path, capsys):
    args = ["learn", "train", "--library", "synthetic", "--out", str(tmp_path / "r")]
    assert main([*args, "--scenario", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nosuch" in err
    bad = tmp_path / "s.yaml"
    bad.write_text("n_userz: 3\n")
    assert main([*args, "--scenario", str(bad)]) == 2
    assert "n_userz" in capsys.readouterr().err


def test_a_training_config_given_as_the_plan_says_use_train_config(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("total_steps: 40\nepisode_slots: 20\neval_every: 20\n")
    args = ["learn", "report", "--library", "synthetic", "--out", str(tmp_path / "r"), "--config", str(config)]
    assert main(args) == 2
    assert "--train-config" in capsys.readouterr().err
