"""MAASN: multi-agent action-semantics network learner (FACMAC-style), top to bottom.

- Decentralised actors (one shared network, applied per agent) score every (EN, PB): the
  cache-vs-drop logit margin ranks the PBs each EN fills its cache with (`features.place`);
  per-PB discrete actions (drop, cache, ask neighbour d) come through straight-through
  Gumbel-Softmax.
- Cold start: the actors start from random weights. `imitate` (behaviour cloning of a placement)
  serves only the named "maasn-warm" ablation; no imitation term is in the actor loss.
- Centralised critic: per-agent Q_n(o, a) with attention over PBs and ENs and per-PB utilities
  summed (`networks.AttentionCritic`; "sum" and "mean" ablations), mixed into Q_tot by a
  monotonic QMIX mixer conditioned on the global state (VDN: a sum; "none": independent learners).
- Critic target: y = R + g^k * Q_tot'(s', o', a') with R the k-step return, g^k its discount
  (`replay.NStep`) and a' the target actors' greedy actions. Episodes end by truncation only, so
  every transition bootstraps.
- Actor loss: -Q_tot(s, o, gumbel_st(pi(o))) + pi_reg * mean(logit^2).
- Learning rates decay linearly to `lr_final` of their start; soft target updates with rate tau.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch.nn import functional as F

from learning.checkpoint import to_torch
from learning.config import TrainConfig
from learning.features import CACHE, DROP, NEIGHBOUR_FEATURES, OWN_FEATURES, STATE_FEATURES, Layout, observe
from learning.mixer import make_mixer
from learning.networks import gumbel_softmax_st, make_actor, make_critic
from learning.replay import split


class Maasn:
    def __init__(self, cfg: TrainConfig, layout: Layout, generator: torch.Generator) -> None:
        self.cfg, self.layout, self.gen = cfg, layout, generator
        width = OWN_FEATURES + layout.max_degree * NEIGHBOUR_FEATURES
        self.actor = make_actor(cfg.actor, layout.max_degree, cfg.hidden)
        self.critic = make_critic(cfg.critic, width, layout.n_actions, cfg.hidden)
        self.mixer = make_mixer(cfg.mixer, layout.n_nodes, STATE_FEATURES, cfg.mixer_embed)
        self.actor_t = copy.deepcopy(self.actor)
        self.critic_t = copy.deepcopy(self.critic)
        self.mixer_t = copy.deepcopy(self.mixer)
        critic_params = list(self.critic.parameters()) + (
            list(self.mixer.parameters()) if self.mixer is not None else []
        )
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.opt_critic = torch.optim.Adam(critic_params, lr=cfg.lr_critic)
        self.critic_params = critic_params
        self.mask = torch.as_tensor(layout.action_mask())  # (N, J, A)

    # ------------------------------------------------------------------ acting
    def inputs(self, obs) -> torch.Tensor:
        """The actor's and critic's view of the observations: without neighbour messages (the
        "no messages" ablation) the neighbours' features are zeroed."""
        x = torch.as_tensor(obs)
        if not self.cfg.messages:
            x = x.clone()
            x[..., OWN_FEATURES:] = 0.0
        return x

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """obs (N, J, F) -> action codes (N, J) and each EN's PB scores (N, J): the cache-vs-drop
        logit margin that ranks the PBs its cache is filled with. `mask` (N, J, A) serves
        another scenario than the training one (the learned policy)."""
        m = self.mask if mask is None else torch.as_tensor(mask)
        logits = self.actor(self.inputs(obs), m)
        if explore:  # an epsilon share of PB decisions (and their scores) sampled from the policy
            u = torch.rand(logits.shape, generator=self.gen).clamp_(1e-10, 1.0 - 1e-10)
            noisy = logits - torch.log(-torch.log(u)) * self.cfg.gumbel_tau
            pick = torch.rand(logits.shape[:-1], generator=self.gen) < self.cfg.explore_eps
            logits = torch.where(pick[..., None], noisy, logits)
        scores = logits[..., CACHE] - logits[..., DROP]
        return logits.argmax(-1).numpy(), scores.double().numpy()

    # ------------------------------------------------------------------ warm start
    def imitate(
        self, obs: np.ndarray, target: np.ndarray, epochs: int, batch: int, rng: np.random.Generator
    ) -> list[float]:
        """Behaviour cloning: obs (S, N, J, F), target placement (S, N, J) bool; cross-entropy
        of cache (placed) vs drop. Returns the mean loss per epoch; targets are synced after."""
        x, y = self.inputs(obs), torch.as_tensor(np.where(target, CACHE, DROP)).long()
        for group in self.opt_actor.param_groups:
            group["lr"] = self.cfg.bc_lr
        losses = []
        for _ in range(epochs):
            order = rng.permutation(len(x))
            total = 0.0
            for start in range(0, len(x), batch):
                idx = torch.as_tensor(order[start : start + batch])
                loss = self._bc_loss(self.actor(x[idx], self.mask), y[idx])
                self.opt_actor.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.grad_clip)
                self.opt_actor.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / len(x))
        self.actor_t.load_state_dict(self.actor.state_dict())
        return losses

    @staticmethod
    def _bc_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, -2), target.flatten())

    # ------------------------------------------------------------------ learning
    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        snap, snap2 = split(batch)
        obs, state = observe(self.layout, snap)
        obs2, state2 = observe(self.layout, snap2)
        return {
            "obs": self.inputs(obs),
            "state": torch.as_tensor(state),
            "obs2": self.inputs(obs2),
            "state2": torch.as_tensor(state2),
            "action": F.one_hot(torch.as_tensor(batch["action"]).long(), self.layout.n_actions).float(),
            "reward": torch.as_tensor(batch["reward"]).float(),
            "discount": torch.as_tensor(batch["discount"]).float(),
        }

    def _mix(self, mixer, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B,) with a mixer, or (B, N) unchanged for independent learners."""
        return q if mixer is None else mixer(q, state)

    def set_progress(self, progress: float) -> None:
        """Linear learning-rate decay: progress 0 -> lr, 1 -> lr * lr_final."""
        scale = 1.0 - (1.0 - self.cfg.lr_final) * min(max(progress, 0.0), 1.0)
        for opt, lr in ((self.opt_actor, self.cfg.lr_actor), (self.opt_critic, self.cfg.lr_critic)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def update(self, batch: dict[str, np.ndarray], progress: float, train_actor: bool) -> dict[str, float]:
        self.set_progress(progress)
        t = self._tensors(batch)
        with torch.no_grad():
            next_logits = self.actor_t(t["obs2"], self.mask)
            next_action = F.one_hot(next_logits.argmax(-1), self.layout.n_actions).float()
            q_next = self._mix(self.mixer_t, self.critic_t(t["obs2"], next_action), t["state2"])
            reward, discount = t["reward"], t["discount"]
            if self.mixer is None:
                reward, discount = reward[:, None], discount[:, None]
            target = reward + discount * q_next
        q = self._mix(self.mixer, self.critic(t["obs"], t["action"]), t["state"])
        critic_loss = F.mse_loss(q, target)
        self.opt_critic.zero_grad()
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic_params, self.cfg.grad_clip)
        self.opt_critic.step()

        actor_loss = torch.zeros(())
        if train_actor:
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
        return {
            "critic_loss": float(critic_loss.detach()),
            "actor_loss": float(actor_loss.detach()),
            "q_mean": float(q.detach().mean()),
        }

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
        mods = {
            "actor": self.actor,
            "critic": self.critic,
            "actor_t": self.actor_t,
            "critic_t": self.critic_t,
            "opt_actor": self.opt_actor,
            "opt_critic": self.opt_critic,
        }
        if self.mixer is not None and any(True for _ in self.mixer.parameters()):
            mods |= {"mixer": self.mixer, "mixer_t": self.mixer_t}
        return mods

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(to_torch(state[k]))
