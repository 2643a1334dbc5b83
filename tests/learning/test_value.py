"""The value learner ("maasn-value"): the decentralised knapsack scores and the Q-learning
update; the facmac scores in spreads ("maasn-hyst")."""

import numpy as np
import pytest
import torch

from learning.config import TrainConfig
from learning.features import CACHE, DROP, PULL0, Layout, place
from learning.maasn import Maasn, value_scores
from learning.trainer import Trainer


def line_layout() -> Layout:
    """3 ENs on a line (0 - 1 - 2), 4 PBs of sizes 1, 1, 2, 4 (mean 2), room for 2 bytes each."""
    neighbours = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
    return Layout(
        pb_bytes=np.array([1, 1, 2, 4]),
        membership=np.eye(4, dtype=bool),
        capacity=np.array([2, 2, 2]),
        neighbours=neighbours,
        max_degree=2,
    )


def test_value_scores_add_a_neighbours_ask_to_the_holder():
    layout = line_layout()
    w = np.zeros((3, 4, layout.n_actions))
    w[1, 0, CACHE] = 0.5  # EN 1 values PB 0 at 0.5 per byte over dropping it
    w[0, 0, PULL0 + 0] = 0.25  # EN 0 would gain 0.25 per byte if its neighbour 0 (EN 1) held PB 0
    w[2, 0, PULL0 + 0] = -1.0  # EN 2's ask is worth nothing: a negative worth never subtracts
    actions, scores = value_scores(layout, w)
    assert scores[1, 0] == pytest.approx(0.75)
    assert scores[0, 0] == 0.0 and scores[2, 0] == 0.0
    assert actions[1, 0] == CACHE and actions[0, 0] == PULL0 + 0
    placement = place(layout, actions, scores, np.zeros((3, 4), bool), keep_bias=0.0, ask_bonus=0.0)
    assert placement[1, 0]
    assert (placement * layout.pb_bytes).sum(1).max() <= 2  # capacity holds


def value_config(**overrides) -> TrainConfig:
    """A seconds-long value-learner run on the tiny library, every PB able to fit a cache."""
    base = dict(
        algorithm="value",
        keep_bias=0.0,
        eval_every=20,
        eval_slots=2,
        val_seeds=(1000,),
        scenario={"beamformer": "mrt", "n_users": 8, "cache_fraction": 0.3},
    )
    return TrainConfig(**(base | overrides))


def test_value_update_fits_a_fixed_batch(tiny_library, tmp_path):
    cfg = value_config(total_steps=20, warmup_steps=1000, lr_critic=3e-3)
    trainer = Trainer(cfg, tiny_library, tmp_path / "run", progress=False)
    trainer.run()
    batch = trainer.replay.sample(8, np.random.default_rng(0))
    losses = [trainer.learner.update(batch, 0.0, True)["critic_loss"] for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]
    assert isinstance(trainer.learner, Maasn) and trainer.learner.critic is None


def test_value_learner_acts_on_utilities_and_its_policy_places_feasibly(tiny_library, tiny_scenario, tmp_path):
    cfg = value_config(total_steps=40, warmup_steps=10)
    trainer = Trainer(cfg, tiny_library, tmp_path / "run", progress=False)
    history = trainer.run()
    assert [row["step"] for row in history] == [20, 40]
    learner = trainer.learner
    assert learner.ask_bonus == 0.0 and trainer.env.ask_bonus == 0.0
    from learning.features import observe

    obs, _ = observe(trainer.layout, trainer.env.snapshot())
    actions, scores = learner.act(obs, explore=False)
    with torch.no_grad():
        w = learner.actor(learner.inputs(obs), learner.mask).double().numpy()
    expect_actions, expect_scores = value_scores(trainer.layout, w)
    assert np.array_equal(actions, expect_actions) and np.allclose(scores, expect_scores)
    assert np.all(w[..., DROP] > -1e6)


def test_spread_scaled_scores_keep_each_ens_ranking(tiny_library, tmp_path):
    """score_scale "spread" (the "maasn-hyst" variant) divides each EN's facmac scores by their
    spread: the order within an EN is unchanged, the keep bias then counts in spreads."""
    from learning.features import observe

    runs = {}
    for scale in ("logit", "spread"):
        cfg = TrainConfig(
            total_steps=20,
            eval_every=20,
            warmup_steps=1000,
            eval_slots=2,
            val_seeds=(1000,),
            score_scale=scale,
            scenario={"beamformer": "mrt", "n_users": 8, "cache_fraction": 0.3},
        )
        trainer = Trainer(cfg, tiny_library, tmp_path / scale, progress=False)
        obs, _ = observe(trainer.layout, trainer.env.snapshot())
        runs[scale] = trainer.learner.act(obs, explore=False)[1]
    logit, spread = runs["logit"], runs["spread"]
    allowed = np.abs(logit) < 1e6
    for n in range(len(logit)):
        ok = allowed[n]
        assert np.array_equal(np.argsort(logit[n][ok], kind="stable"), np.argsort(spread[n][ok], kind="stable"))
        assert spread[n][ok].std() == pytest.approx(1.0)
