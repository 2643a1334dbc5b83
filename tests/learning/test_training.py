"""Short seeded training runs on a tiny scenario: warm start, learning, resume, checkpoints."""

import json

import numpy as np
import pytest
import torch

from delivery.config import ScenarioConfig
from learning.checkpoint import POLICY, RUN, run_files
from learning.config import TrainConfig
from learning.errors import CheckpointError
from learning.evaluate import evaluate_policies
from learning.policy import load_policy, register_checkpoint
from learning.trainer import Trainer

TINY = dict(
    scenario={"beamformer": "mrt", "n_users": 8},
    episode_slots=20,
    warmup_steps=40,
    actor_delay=20,
    val_seeds=(1000, 1001),
    eval_slots=6,
    da_refit_every=40,
    da_rollout_every=5,
)


def test_warm_start_ablation_clones_and_runs_through_the_harness(tiny_library, tmp_path):
    # the "maasn-warm" ablation: greedy episodes cloned once. The clone sees no greedy feature, so
    # it imitates from demand and sizes alone (a loss well below chance, not greedy's bits).
    cfg = TrainConfig(total_steps=20, eval_every=20, seed=0, **(TINY | {"bc_epochs": 100, "bc_episodes": 1}))
    trainer = Trainer(cfg, tiny_library, tmp_path / "run", progress=False)
    history = trainer.run()
    scenario = ScenarioConfig(beamformer="mrt", n_users=8)
    values = evaluate_policies(scenario, tiny_library, {"bc": lambda: load_policy(tmp_path / "run")}, [1000, 1001], 6)
    assert history[0]["step"] == 20 and history[0]["bc_loss"] < 0.5 * np.log(2)
    # logs: CSV rows per validation, TensorBoard event file, forecast skill against both baselines
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == len(history) + 1
    assert list((tmp_path / "run" / "tb").glob("events.*"))
    # the best policy runs as a delivery policy by name, with the same numbers
    register_checkpoint("maasn-test", tmp_path / "run")
    again = evaluate_policies(scenario, tiny_library, {"maasn-test": None}, [1000, 1001], 6)["maasn-test"]
    assert np.array_equal(again, values["bc"])


def test_checkpoints_are_safetensors_and_json(tiny_library, tmp_path):
    cfg = TrainConfig(total_steps=40, eval_every=20, seed=1, **(TINY | {"warmup_steps": 20}))
    Trainer(cfg, tiny_library, tmp_path / "r", progress=False).run()
    for stem in (RUN, POLICY):
        weights, meta = run_files(tmp_path / "r", stem)
        assert weights.read_bytes()[8:9] == b"{"  # safetensors: 8-byte length, then a JSON header
        json.loads(meta.read_text())
    assert not list((tmp_path / "r").glob("*.pt"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_policy(tmp_path / "nowhere")
    run_files(tmp_path / "r", POLICY)[1].write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_policy(tmp_path / "r")


@pytest.mark.parametrize("algorithm", ["facmac", "value"])
def test_resume_continues_the_same_run(tiny_library, tmp_path, algorithm):
    cfg = TrainConfig(total_steps=80, eval_every=40, seed=3, algorithm=algorithm, **(TINY | {"warmup_steps": 20}))
    whole = Trainer(cfg, tiny_library, tmp_path / "a", progress=False).run()
    first = Trainer(cfg, tiny_library, tmp_path / "b", progress=False)
    first.run(stop_after=60)
    assert first.step == 60
    resumed = Trainer.resume(tmp_path / "b", tiny_library, progress=False)
    assert resumed.step == 60
    rest = resumed.run()
    assert [r["eval_delay_s"] for r in rest] == [r["eval_delay_s"] for r in whole]
    np.testing.assert_array_equal([r["critic_loss"] for r in rest], [r["critic_loss"] for r in whole])
    # the forecaster measured its skill against both count baselines; the share follows it
    last = rest[-1]
    assert np.isfinite(last["forecast_skill"]) and np.isfinite(last["cumulative_mse"]) and np.isfinite(last["ema_mse"])
    expected = cfg.da_share_max * float(np.clip(last["forecast_skill"] / cfg.da_skill_full, 0, 1))
    assert last["synthetic_share"] == pytest.approx(expected)
    a, b = load_policy(tmp_path / "a").actor_state, load_policy(tmp_path / "b").actor_state
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_plain_progress_lines_carry_no_stale_step(tiny_library, tmp_path, capsys, monkeypatch):
    """Not a terminal: validation results are log lines; the progress line keeps its plain label
    (it used to repeat the last validation's "step N/T" while later steps ran)."""
    import pbkit.common.progress

    # a tiny run takes ~3 s, less than the default interval between plain lines: print each step
    monkeypatch.setattr(pbkit.common.progress, "DEFAULT_INTERVAL_S", 0.0)
    cfg = TrainConfig(total_steps=40, eval_every=20, seed=0, **TINY)
    Trainer(cfg, tiny_library, tmp_path / "run", progress=True).run()
    err = capsys.readouterr().err.splitlines()
    validations = [line for line in err if line.startswith("learn seed 0 step ")]
    assert [line.split()[4].rstrip(":") for line in validations] == ["20/40", "40/40"]
    progress_lines = [line for line in err if line not in validations and "40" in line]
    assert progress_lines and not any("validation" in line for line in progress_lines), err
