"""MAASN: multi-agent action-semantics network learner (FACMAC-style), top to bottom.

- Decentralised actors (one shared network, applied per agent) emit per-PB discrete actions
  through straight-through Gumbel-Softmax.
- Centralised critic: per-agent Q_n(o_n, a_n) mixed into Q_tot by a monotonic QMIX mixer
  conditioned on the global state (VDN: a sum; "none": independent learners).
- Critic target: y = r + gamma * Q_tot'(s', o', a') with a' the target actors' greedy actions.
  Episodes end by truncation only, so every transition bootstraps.
- Actor loss: -Q_tot(s, o, gumbel_st(pi(o))) + pi_reg * mean(logit^2) (FACMAC).
- Soft target updates with rate tau.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.nn import functional as F

from learning.config import TrainConfig
from learning.features import (CACHE, NEIGHBOUR_FEATURES, OWN_FEATURES, STATE_FEATURES, Layout,
                               observe)
from learning.mixer import make_mixer
from learning.networks import AgentCritic, gumbel_softmax_st, make_actor


class Maasn:
    def __init__(self, cfg: TrainConfig, layout: Layout, generator: torch.Generator) -> None:
        self.cfg, self.layout, self.gen = cfg, layout, generator
        width = OWN_FEATURES + layout.max_degree * NEIGHBOUR_FEATURES
        self.actor = make_actor(cfg.actor, layout.max_degree, cfg.hidden)
        self.critic = AgentCritic(width, layout.n_actions, cfg.hidden)
        self.mixer = make_mixer(cfg.mixer, layout.n_nodes, STATE_FEATURES, cfg.mixer_embed)
        self.actor_t = copy.deepcopy(self.actor)
        self.critic_t = copy.deepcopy(self.critic)
        self.mixer_t = copy.deepcopy(self.mixer)
        critic_params = list(self.critic.parameters()) + (
            list(self.mixer.parameters()) if self.mixer is not None else [])
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.opt_critic = torch.optim.Adam(critic_params, lr=cfg.lr_critic)
        self.critic_params = critic_params
        self.mask = torch.as_tensor(layout.action_mask())          # (N, J, A)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, np.ndarray]:
        """obs (N, J, F) -> action codes (N, J) and each EN's cache confidence (N, J)."""
        logits = self.actor(torch.as_tensor(obs), self.mask)
        probs = F.softmax(logits, -1)
        actions = logits.argmax(-1)
        if explore:  # epsilon share of PB decisions sampled, so caches are not thrashed every slot
            sampled = gumbel_softmax_st(logits, self.gen, self.cfg.gumbel_tau).argmax(-1)
            pick = torch.rand(actions.shape, generator=self.gen) < self.cfg.explore_eps
            actions = torch.where(pick, sampled, actions)
        return actions.numpy(), probs[..., CACHE].numpy()

    # ------------------------------------------------------------------ learning
    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        obs, state = observe(self.layout, batch["placement"], batch["ema"], batch["last"], batch["users"])
        obs2, state2 = observe(self.layout, batch["next_placement"], batch["next_ema"],
                               batch["next_last"], batch["users"])
        return {
            "obs": torch.as_tensor(obs), "state": torch.as_tensor(state),
            "obs2": torch.as_tensor(obs2), "state2": torch.as_tensor(state2),
            "action": F.one_hot(torch.as_tensor(batch["action"]).long(), self.layout.n_actions).float(),
            "reward": torch.as_tensor(batch["reward"]).float(),
        }

    def _mix(self, mixer, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B,) with a mixer, or (B, N) unchanged for independent learners."""
        return q if mixer is None else mixer(q, state)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        t = self._tensors(batch)
        with torch.no_grad():
            next_logits = self.actor_t(t["obs2"], self.mask)
            next_action = F.one_hot(next_logits.argmax(-1), self.layout.n_actions).float()
            q_next = self._mix(self.mixer_t, self.critic_t(t["obs2"], next_action), t["state2"])
            reward = t["reward"] if self.mixer is not None else t["reward"][:, None]
            target = reward + self.cfg.gamma * q_next
        q = self._mix(self.mixer, self.critic(t["obs"], t["action"]), t["state"])
        critic_loss = F.mse_loss(q, target)
        self.opt_critic.zero_grad()
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic_params, self.cfg.grad_clip)
        self.opt_critic.step()

        logits = self.actor(t["obs"], self.mask)
        relaxed = gumbel_softmax_st(logits, self.gen, self.cfg.gumbel_tau)
        q_pi = self._mix(self.mixer, self.critic(t["obs"], relaxed), t["state"])
        allowed = self.mask.expand_as(logits) > 0
        actor_loss = -q_pi.mean() + self.cfg.pi_reg * (logits[allowed] ** 2).mean()
        self.opt_actor.zero_grad()
        actor_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.grad_clip)
        self.opt_actor.step()

        self._soft_update()
        return {"critic_loss": float(critic_loss.detach()), "actor_loss": float(actor_loss.detach()),
                "q_mean": float(q.detach().mean())}

    @torch.no_grad()
    def _soft_update(self) -> None:
        pairs = [(self.actor_t, self.actor), (self.critic_t, self.critic)]
        if self.mixer is not None:
            pairs.append((self.mixer_t, self.mixer))
        for target, online in pairs:
            for pt, p in zip(target.parameters(), online.parameters()):
                pt.mul_(1.0 - self.cfg.tau).add_(p, alpha=self.cfg.tau)

    # ------------------------------------------------------------------ persistence
    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        mods = {"actor": self.actor, "critic": self.critic, "actor_t": self.actor_t,
                "critic_t": self.critic_t, "opt_actor": self.opt_actor, "opt_critic": self.opt_critic}
        if self.mixer is not None and any(True for _ in self.mixer.parameters()):
            mods |= {"mixer": self.mixer, "mixer_t": self.mixer_t}
        return mods

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[k])
