"""A trained actor as a delivery caching policy (greedy actions), so learned agents run beside
the heuristics on the same scenarios through the same `Policy.place(view, rng)` contract.

Acting is `Maasn.act` (the trainer's own code path) on the snapshot of the view, then
`features.place` fills every cache from the scores, exactly as in training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from learning.checkpoint import POLICY, load_state, save_state, to_torch
from learning.config import TrainConfig
from learning.features import Layout, observe, place, snapshot
from learning.networks import make_actor


class LearnedPolicy:
    """Decentralised greedy execution: each EN's actor row reads only its own observation."""

    mode: str | None = None

    def __init__(
        self,
        actor_state: dict[str, Any],
        cfg: TrainConfig,
        max_degree: int,
        name: str = "maasn-da",
        esn: dict[str, Any] | None = None,
    ) -> None:
        self.actor_state = {k: torch.as_tensor(np.asarray(v)).clone() for k, v in actor_state.items()}
        self.cfg, self.max_degree, self.name = cfg, max_degree, name
        self.esn_state = esn  # the fitted ESN of the run: the forecast feature, as in training
        self._forecaster = None
        self._x: np.ndarray | None = None
        self._learner = None
        self._layout: Layout | None = None
        self._previous: dict | None = None
        self._last_slot = -1

    def _start(self, view) -> None:
        from learning.maasn import Maasn

        layout = Layout.from_view(view, self.max_degree)
        if self._layout is None or not layout.same_as(self._layout):
            self._layout = layout
            self._learner = Maasn(self.cfg, layout, torch.Generator().manual_seed(0))
            self._learner.actor.load_state_dict(self.actor_state)
            self._learner.actor.eval()
            if self.esn_state is not None:
                from learning.augmentation import PopularityForecaster

                c = self.cfg
                fc = PopularityForecaster(
                    layout.n_nodes, layout.n_models, c.esn_reservoir, c.esn_spectral_radius, c.esn_leak, c.esn_ridge
                )
                fc.esn.load_state_dict({k: np.asarray(v) for k, v in self.esn_state.items()})
                self._forecaster = fc
        self._previous = None
        self._x = None

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        """Raises ValueError if the scenario has more neighbours per EN than the actor knows."""
        if self._learner is None or view.slot <= self._last_slot or view.slot == 0:
            self._start(view)
        self._last_slot = view.slot
        snap = snapshot(view, self._previous, self.cfg.ema_alpha)
        if self._forecaster is not None:  # the reservoir follows the run as in training
            from learning.augmentation import series_inputs

            fc = self._forecaster
            x = fc.esn.zero_state((fc.n_nodes * fc.n_models,)) if self._x is None else self._x
            self._x = fc.esn.update(x, series_inputs(snap))
            snap["forecast"] = fc.forecast(self._x, snap)
        self._previous = snap
        obs, _ = observe(self._layout, snap)
        actions, scores = self._learner.act(obs, explore=False)
        return place(self._layout, actions, scores, snap["placement"], self.cfg.keep_bias, self._learner.ask_bonus)


def save_policy(
    directory: str | Path, actor: torch.nn.Module, cfg: TrainConfig, max_degree: int, meta: dict[str, Any]
) -> None:
    """Write the actor's weights and config as the run's policy files."""
    save_state(
        directory, {"config": cfg.to_dict(), "max_degree": max_degree, "actor": actor.state_dict(), **meta}, POLICY
    )


def load_policy(checkpoint: str | Path, name: str = "maasn-da") -> LearnedPolicy:
    """The greedy policy of a run directory (its best validated actor). Raises CheckpointError."""
    from learning.errors import CheckpointError

    state = load_state(checkpoint, POLICY)
    try:
        cfg = TrainConfig.from_dict(state["config"], where=str(checkpoint))
        weights = to_torch(state["actor"])
        make_actor(cfg.actor, int(state["max_degree"]), cfg.hidden).load_state_dict(weights)  # shapes match
        esn = state.get("esn")
        policy = LearnedPolicy(weights, cfg, int(state["max_degree"]), name, esn=esn)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{checkpoint}: not a policy checkpoint ({exc})") from None
    return policy


def register_checkpoint(name: str, checkpoint: str | Path) -> None:
    """Make `delivery.policies.make_policy(name)` return the checkpoint's greedy policy."""
    from delivery.policies import register_policy

    load_policy(checkpoint, name)  # fail now, not at the first make_policy
    register_policy(name, lambda **_: load_policy(checkpoint, name))
