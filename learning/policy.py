"""A trained actor as a delivery caching policy (greedy actions), so learned agents run beside
the heuristics on the same scenarios through the same `Policy.place(view, rng)` contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from learning.features import Layout, ema_update, observe, project, request_share
from learning.networks import make_actor


class LearnedPolicy:
    """Decentralised greedy execution: each EN's actor row reads only its own observation."""

    def __init__(self, actor: torch.nn.Module, max_degree: int, ema_alpha: float, name: str = "maasn-da") -> None:
        self.actor, self.max_degree, self.ema_alpha, self.name = actor, max_degree, ema_alpha, name
        self._ema: np.ndarray | None = None
        self._layout: Layout | None = None
        self._last_slot = -1

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        if self._layout is None or view.slot <= self._last_slot or view.slot == 0:
            self._layout = Layout.from_view(view)
            if self._layout.max_degree > self.max_degree:
                raise ValueError(f"{self.name}: scenario has ENs with {self._layout.max_degree} neighbours, "
                                 f"the actor was trained for {self.max_degree}")
            self._layout = Layout(self._layout.pb_bytes, self._layout.membership, self._layout.capacity,
                                  self._layout.neighbours, self.max_degree)
            self._mask = torch.as_tensor(self._layout.action_mask())
            self._ema = None
        self._last_slot = view.slot
        users = np.asarray(view.users_per_node, dtype=np.float64)
        last = request_share(np.asarray(view.last_requests, dtype=np.float64), users)
        self._ema = last.copy() if self._ema is None else ema_update(self._ema, last, self.ema_alpha)
        obs, _ = observe(self._layout, np.asarray(view.placement, bool), self._ema, last, users)
        with torch.no_grad():
            logits = self.actor(torch.as_tensor(obs), self._mask)
        actions = logits.argmax(-1).numpy()
        priority = torch.softmax(logits, -1)[..., 1].numpy()
        return project(self._layout, actions, priority)


def load_policy(checkpoint: str | Path, name: str = "maasn-da") -> LearnedPolicy:
    """The greedy policy of a training checkpoint (see learning.trainer)."""
    from learning.config import TrainConfig
    from learning.errors import CheckpointError

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoint.pt"
    try:
        ck = torch.load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path}: cannot load checkpoint ({exc})") from None
    cfg = TrainConfig.from_dict(ck["config"], where=str(path))
    actor = make_actor(cfg.actor, ck["max_degree"], cfg.hidden)
    actor.load_state_dict(ck["learner"]["actor"])
    actor.eval()
    return LearnedPolicy(actor, ck["max_degree"], cfg.ema_alpha, name)


def register_checkpoint(name: str, checkpoint: str | Path) -> None:
    """Make `delivery.policies.make_policy(name)` return the checkpoint's greedy policy."""
    from delivery.policies import register_policy

    register_policy(name, lambda **_: load_policy(checkpoint, name))
