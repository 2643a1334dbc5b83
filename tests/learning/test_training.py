"""Short seeded training runs on a tiny scenario: learning, resume, data augmentation."""

import numpy as np
import torch

from delivery.policies import make_policy
from learning.config import TrainConfig
from learning.evaluate import evaluate
from learning.policy import load_policy, register_checkpoint
from learning.trainer import Trainer

TINY = dict(scenario={"beamformer": "mrt", "n_users": 8}, episode_slots=20, warmup_steps=40,
            eval_seeds=(1000, 1001, 1002), eval_slots=10, da_refit_every=40)


def test_training_beats_random_placement(tiny_library, tmp_path):
    cfg = TrainConfig(total_steps=400, eval_every=200, seed=0, **TINY)
    trainer = Trainer(cfg, tiny_library, tmp_path / "run", progress=False)
    history = trainer.run()
    learned = history[-1]["eval_delay_s"]
    random = evaluate(lambda: make_policy("random"), tiny_library, trainer.scenario, cfg.eval_seeds, 10).mean()
    assert learned < 0.95 * random, (learned, random)
    # logs: CSV rows per evaluation, TensorBoard event file, DA errors measured
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 3
    assert list((tmp_path / "run" / "tb").glob("events.*"))
    assert np.isfinite(history[-1]["reward_nrmse"]) and np.isfinite(history[-1]["request_excess_error"])
    assert trainer.synthetic_steps > 0
    # the checkpoint runs as a delivery policy, by name, with the same numbers
    register_checkpoint("maasn-test", tmp_path / "run")
    again = evaluate(lambda: make_policy("maasn-test"), tiny_library, trainer.scenario, cfg.eval_seeds, 10).mean()
    assert again == learned


def test_resume_continues_the_same_run(tiny_library, tmp_path):
    cfg = TrainConfig(total_steps=80, eval_every=40, seed=3, **(TINY | {"warmup_steps": 20, "da_refit_every": 20,
                                                                            "da_rollout_every": 5}))
    whole = Trainer(cfg, tiny_library, tmp_path / "a", progress=False).run()
    first = Trainer(cfg, tiny_library, tmp_path / "b", progress=False)
    first.run(stop_after=60)
    assert first.step == 60
    resumed = Trainer.resume(tmp_path / "b", tiny_library, progress=False)
    assert resumed.step == 60
    rest = resumed.run()
    assert [r["eval_delay_s"] for r in rest] == [r["eval_delay_s"] for r in whole]
    assert [r["critic_loss"] for r in rest] == [r["critic_loss"] for r in whole]
    a = load_policy(tmp_path / "a").actor.state_dict()
    b = load_policy(tmp_path / "b").actor.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
