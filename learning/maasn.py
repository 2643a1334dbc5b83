"""MAASN: multi-agent action-semantics network learner, top to bottom, in two algorithms.

`algorithm = "facmac"` (the default) and `algorithm = "value"` (the "maasn-value" variant).

`value` (QMIX-style value learning over factored actions):
- Each EN's network (the ASN of `networks`, shared by all agents and PBs) gives utilities
  u(o_nj, a) of every action on PB j from the EN's own observation: drop, cache, ask
  neighbour d to hold it. Q_n(o_n, a_n) = sum_j u(o_nj, a_nj) (the "mean" ablation: mean_j),
  mixed into Q_tot by the monotonic QMIX mixer conditioned on the global state (pooled over
  PBs by attention; "sum" ablation: by the mean).
- Acting is decentralised and needs no critic: an EN's action value decomposes over PBs, so its
  best feasible placement is a knapsack on the utility margins u(cache) - u(drop), filled by
  margin per byte (`features.place`); what a neighbour's "ask me" is worth to that neighbour
  (u(ask) - u(drop), positive part) is added to the holder's margin (the message it receives).
- Target: y = R + g^k Q_tot'(s', a*) with a* the placement the online utilities choose at s'
  (double Q-learning) evaluated by the target network; Huber loss on Q_tot.

`facmac`:
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
from learning.features import (
    ASK_BONUS,
    CACHE,
    DROP,
    NEIGHBOUR_FEATURES,
    OWN_FEATURES,
    PULL0,
    STATE_FEATURES,
    Layout,
    effective_actions,
    observe,
    place,
)
from learning.mixer import make_mixer
from learning.networks import ASNActor, gumbel_softmax_st, make_actor, make_critic
from learning.replay import split

UTILITY_INIT_SCALE = 0.01  # value learner: Q_n sums J utilities, so they start near zero


def value_scores(layout: Layout, per_byte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The value learner's decentralised choice from per-byte utilities w (..., N, J, A) (u = w x
    the PB's size over the mean PB's): the action codes (the best action per PB) and each EN's
    knapsack scores (..., N, J): the own margin w(cache) - w(drop) plus the positive worth
    w(ask) - w(drop) of every neighbour's request to hold the PB, all per byte of that PB.
    Masked actions carry networks.NEG and drop out."""
    u = np.asarray(per_byte, dtype=np.float64)
    drop = u[..., DROP]
    margin = u[..., CACHE] - drop
    idx, valid = layout.neighbour_index()
    for d in range(layout.max_degree):  # what neighbour n's ask of its d-th neighbour is worth to n
        ask = np.maximum(u[..., PULL0 + d] - drop, 0.0) * valid[:, d : d + 1]
        for n in np.flatnonzero(valid[:, d]):
            margin[..., idx[n, d], :] += ask[..., n, :]
    return u.argmax(-1), margin


def output_layers(actor: torch.nn.Module) -> list[torch.nn.Linear]:
    """The layers an actor's action values come out of: the ASN's own-action head and the query
    of its pull inner products, or the MLP actor's last layer."""
    if isinstance(actor, ASNActor):
        return [actor.own_head, actor.query]
    return [actor.net[-1]]


def spread_per_node(scores: np.ndarray) -> np.ndarray:
    """(N,) standard deviation of each EN's scores (N, J) over its allowed PBs (masked scores,
    of the order of networks.NEG, left out), at least 1e-6."""
    fits = np.abs(scores) < 1e6
    return np.array([max(float(row[ok].std()) if ok.any() else 0.0, 1e-6) for row, ok in zip(scores, fits)])


def relative_sizes(layout: Layout) -> np.ndarray:
    """(J,) each PB's bytes over the mean PB's: what turns a per-byte utility into a PB's."""
    return layout.pb_bytes / max(float(layout.pb_bytes.mean()), 1.0)


class Maasn:
    def __init__(self, cfg: TrainConfig, layout: Layout, generator: torch.Generator) -> None:
        self.cfg, self.layout, self.gen = cfg, layout, generator
        self.value = cfg.algorithm == "value"
        # the value learner's scores hold the asks' worth already (value_scores)
        self.ask_bonus = 0.0 if self.value else ASK_BONUS
        width = OWN_FEATURES + layout.max_degree * NEIGHBOUR_FEATURES
        # value learner: "actor" is the utility network u(o_nj, .) (what the policy files carry)
        self.actor = make_actor(cfg.actor, layout.max_degree, cfg.hidden)
        if self.value:
            with torch.no_grad():
                for head in output_layers(self.actor):
                    head.weight.mul_(UTILITY_INIT_SCALE)
                    if head.bias is not None:
                        head.bias.zero_()
        self.critic = None if self.value else make_critic(cfg.critic, width, layout.n_actions, cfg.hidden)
        attention = self.value and cfg.critic == "attention"
        self.mixer = make_mixer(cfg.mixer, layout.n_nodes, STATE_FEATURES, cfg.mixer_embed, attention)
        self.actor_t = copy.deepcopy(self.actor)
        self.critic_t = copy.deepcopy(self.critic)
        self.mixer_t = copy.deepcopy(self.mixer)
        mixer_params = list(self.mixer.parameters()) if self.mixer is not None else []
        if self.value:  # one network learns: the utilities (and the mixer)
            critic_params = list(self.actor.parameters()) + mixer_params
        else:
            critic_params = list(self.critic.parameters()) + mixer_params
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.opt_critic = torch.optim.Adam(critic_params, lr=cfg.lr_critic)
        self.critic_params = critic_params
        self.mask = torch.as_tensor(layout.action_mask())  # (N, J, A)
        # value learner: the network gives utility per byte (a model's delivery time is close to
        # additive in the bytes of its PBs that must come from further away), u = w x size
        self.sizes = torch.as_tensor(relative_sizes(layout), dtype=torch.float32)[:, None]  # (J, 1)

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
        if self.value:
            return self._act_value(logits.double().numpy(), explore)
        if explore:  # an epsilon share of PB decisions (and their scores) sampled from the policy
            u = torch.rand(logits.shape, generator=self.gen).clamp_(1e-10, 1.0 - 1e-10)
            noisy = logits - torch.log(-torch.log(u)) * self.cfg.gumbel_tau
            pick = torch.rand(logits.shape[:-1], generator=self.gen) < self.cfg.explore_eps
            logits = torch.where(pick[..., None], noisy, logits)
        scores = (logits[..., CACHE] - logits[..., DROP]).double().numpy()
        if self.cfg.score_scale == "spread":
            scores = scores / spread_per_node(scores)[:, None]
        return logits.argmax(-1).numpy(), scores

    def _act_value(self, utilities: np.ndarray, explore: bool) -> tuple[np.ndarray, np.ndarray]:
        actions, scores = value_scores(self.layout, utilities)
        if explore:
            # Gaussian noise on the ranking, in units of each EN's spread of scores, drawn per
            # model and spread over its PBs: a request is served from the edge only when its
            # model's blocks are there, and PB-wise noise almost never completes a model, so it
            # would explore placements whose rewards barely differ
            spread = spread_per_node(scores)
            z = torch.randn((scores.shape[0], self.layout.n_models), generator=self.gen, dtype=torch.float64)
            member = self.layout.membership.astype(np.float64)
            noise = (z.numpy() @ member) / np.sqrt(np.maximum(member.sum(0), 1.0))
            scores = scores + self.cfg.explore_noise * spread[:, None] * noise
            u = torch.rand(actions.shape, generator=self.gen).numpy()
            flip = u < self.cfg.explore_eps  # an epsilon share of PBs take a random allowed action code
            if flip.any():
                allowed = self.mask.numpy()
                pick = torch.rand(allowed.shape, generator=self.gen).numpy() * allowed
                actions = np.where(flip, pick.argmax(-1), actions)
        return actions, scores

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

    def _agent_q(self, utilities: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q_n = sum_j u(o_nj, a_nj) (B, N) (mean_j for the "mean" ablation) from per-byte
        utilities w: u = w x relative size. Masked entries of w are finite (NEG) and never chosen,
        so the product with a one-hot action is exact."""
        per_pb = (utilities * action).sum(-1) * self.sizes[:, 0]
        return per_pb.mean(-1) if self.cfg.critic == "mean" else per_pb.sum(-1)

    def _greedy_effective(self, obs: torch.Tensor, placement: np.ndarray) -> torch.Tensor:
        """One-hot effective actions (B, N, J, A) of the placements the online utilities choose
        at each sampled state (the double-Q argmax: a knapsack per EN, `features.place`)."""
        utilities = self.actor(obs, self.mask).double().numpy()
        out = np.empty(utilities.shape[:-1], dtype=np.int64)
        for b in range(len(utilities)):
            actions, scores = value_scores(self.layout, utilities[b])
            chosen = place(self.layout, actions, scores, placement[b], self.cfg.keep_bias, ask_bonus=0.0)
            out[b] = effective_actions(self.layout, actions, chosen)
        return F.one_hot(torch.as_tensor(out), self.layout.n_actions).float()

    def _update_value(self, t: dict[str, torch.Tensor], next_placement: np.ndarray) -> dict[str, float]:
        with torch.no_grad():
            next_action = self._greedy_effective(t["obs2"], next_placement)
            q_next = self._mix(
                self.mixer_t, self._agent_q(self.actor_t(t["obs2"], self.mask), next_action), t["state2"]
            )
            reward, discount = t["reward"], t["discount"]
            if self.mixer is None:
                reward, discount = reward[:, None], discount[:, None]
            target = reward + discount * q_next
        q = self._mix(self.mixer, self._agent_q(self.actor(t["obs"], self.mask), t["action"]), t["state"])
        loss = F.smooth_l1_loss(q, target)
        self.opt_critic.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic_params, self.cfg.grad_clip)
        self.opt_critic.step()
        self._soft_update()
        return {"critic_loss": float(loss.detach()), "actor_loss": 0.0, "q_mean": float(q.detach().mean())}

    def update(self, batch: dict[str, np.ndarray], progress: float, train_actor: bool) -> dict[str, float]:
        """One gradient step on a replay batch (`train_actor`: the facmac actor too)."""
        self.set_progress(progress)
        t = self._tensors(batch)
        if self.value:
            return self._update_value(t, np.asarray(batch["next_placement"], dtype=bool))
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
        pairs = [(self.actor_t, self.actor)] + ([] if self.critic is None else [(self.critic_t, self.critic)])
        if self.mixer is not None:
            pairs.append((self.mixer_t, self.mixer))
        for target, online in pairs:
            for pt, p in zip(target.parameters(), online.parameters()):
                pt.mul_(1.0 - self.cfg.tau).add_(p, alpha=self.cfg.tau)

    # ------------------------------------------------------------------ persistence
    def modules(self) -> dict[str, torch.nn.Module | torch.optim.Optimizer]:
        mods = {
            "actor": self.actor,
            "actor_t": self.actor_t,
            "opt_actor": self.opt_actor,
            "opt_critic": self.opt_critic,
        }
        if self.critic is not None:
            mods |= {"critic": self.critic, "critic_t": self.critic_t}
        if self.mixer is not None and any(True for _ in self.mixer.parameters()):
            mods |= {"mixer": self.mixer, "mixer_t": self.mixer_t}
        return mods

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(to_torch(state[k]))
