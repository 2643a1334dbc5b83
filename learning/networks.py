"""Actors and per-agent critics. All weights are shared across agents and across PBs, so one
network serves any number of ENs and any library size (the obs of agent n is a (J, F) table).

ASNActor scores an agent's own actions (drop / cache PB j) from its own features, and each
neighbour-directed action (ask neighbour m to hold PB j, i.e. pull it from m) by the inner
product of an own embedding and an (own, m) pair embedding whose weights are shared across
neighbours -- the Action Semantics Network construction. MLPActor is the ablation: one MLP
reads the whole concatenated row and outputs every action's logit with no such structure.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from learning.features import NEIGHBOUR_FEATURES, OWN_FEATURES

NEG = -1e9  # logit of a masked action


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ASNActor(nn.Module):
    def __init__(self, max_degree: int, hidden: int = 64) -> None:
        super().__init__()
        self.max_degree = max_degree
        self.own = mlp([OWN_FEATURES, hidden, hidden])
        self.own_head = nn.Linear(hidden, 2)
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.pair = mlp([OWN_FEATURES + NEIGHBOUR_FEATURES, hidden])  # shared over neighbours
        self.scale = hidden**-0.5

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """obs (..., J, F), mask (..., J, A) -> logits (..., J, A)."""
        own_x = obs[..., :OWN_FEATURES]
        h = self.own(own_x)
        own_logits = self.own_head(F.relu(h))
        nb = obs[..., OWN_FEATURES:].unflatten(-1, (self.max_degree, NEIGHBOUR_FEATURES))
        pair_x = torch.cat([own_x.unsqueeze(-2).expand(*nb.shape[:-1], OWN_FEATURES), nb], -1)
        e = F.relu(self.pair(pair_x))  # (..., J, D, H)
        pull_logits = (self.query(h).unsqueeze(-2) * e).sum(-1) * self.scale
        logits = torch.cat([own_logits, pull_logits], -1)
        return logits.masked_fill(mask <= 0, NEG)


class MLPActor(nn.Module):
    def __init__(self, max_degree: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = mlp([OWN_FEATURES + max_degree * NEIGHBOUR_FEATURES, hidden, hidden, 2 + max_degree])

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(obs).masked_fill(mask <= 0, NEG)


def make_actor(kind: str, max_degree: int, hidden: int) -> nn.Module:
    if kind == "asn":
        return ASNActor(max_degree, hidden)
    if kind == "mlp":
        return MLPActor(max_degree, hidden)
    raise ValueError(f"actor {kind!r} is not 'asn' or 'mlp'")


class AgentCritic(nn.Module):
    """Q_n(o_n, a_n) = mean_j u(o_nj, a_nj) + v(mean_j phi(o_nj)) (the "mean critic" ablation:
    each PB's credit is diluted by 1/J).

    Additive over PBs with weights shared across PBs (any J works), so every PB row of every
    sample trains the same utility u -- the credit for a PB's action goes to that PB's row --
    plus an action-free baseline v of the agent's situation."""

    def __init__(self, obs_width: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.utility = mlp([obs_width + n_actions, hidden, 1])
        self.phi = mlp([obs_width, hidden])
        self.value = mlp([hidden, hidden, 1])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs (B, N, J, F), action (B, N, J, A) -> (B, N)."""
        u = self.utility(torch.cat([obs, action], -1)).squeeze(-1).mean(-1)
        v = self.value(F.relu(self.phi(obs)).mean(-2)).squeeze(-1)
        return u + v


class AttentionCritic(nn.Module):
    """Q_n(o, a) = sum_j u(e_nj, node-attention_nj, context_n) + v(mean_j phi(o_nj)).

    e_nj embeds EN n's row and action for PB j. Node attention: for each PB, the ENs attend to
    each other's embeddings (who holds or pulls the PB matters to every EN that could serve it
    cooperatively). PB attention: a learned query pools each EN's J embeddings into a context
    (the PBs compete for the same cache). The per-PB utilities are summed, not averaged, so the
    credit a PB's action receives does not shrink as 1/J with the catalogue. `attention=False`
    keeps the sum and drops both attentions (the "no attention" ablation)."""

    def __init__(
        self, obs_width: int, n_actions: int, hidden: int = 64, attention: bool = True, heads: int = 2
    ) -> None:
        super().__init__()
        self.attention = attention
        self.embed = mlp([obs_width + n_actions, hidden, hidden])
        if attention:
            self.node_attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.pb_query = nn.Parameter(torch.zeros(1, 1, hidden))
            self.pb_attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.utility = mlp([hidden * (3 if attention else 1), hidden, 1])
        self.phi = mlp([obs_width, hidden])
        self.value = mlp([hidden, hidden, 1])
        with torch.no_grad():  # start near Q = v: a sum over hundreds of PBs must not start large
            self.utility[-1].weight.mul_(0.01)
            self.utility[-1].bias.zero_()

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs (B, N, J, F), action (B, N, J, A) -> (B, N)."""
        e = F.relu(self.embed(torch.cat([obs, action], -1)))  # (B, N, J, H)
        b, n, j, h = e.shape
        if self.attention:
            x = e.transpose(1, 2).reshape(b * j, n, h)
            nodes, _ = self.node_attn(x, x, x, need_weights=False)
            nodes = nodes.reshape(b, j, n, h).transpose(1, 2)
            y = e.reshape(b * n, j, h)
            ctx, _ = self.pb_attn(self.pb_query.expand(b * n, 1, h), y, y, need_weights=False)
            ctx = ctx.reshape(b, n, 1, h).expand(b, n, j, h)
            e = torch.cat([e, nodes, ctx], -1)
        u = self.utility(e).squeeze(-1).sum(-1)
        v = self.value(F.relu(self.phi(obs)).mean(-2)).squeeze(-1)
        return u + v


def make_critic(kind: str, obs_width: int, n_actions: int, hidden: int) -> nn.Module:
    """ "attention" (default), "sum" (no attention) or "mean" (per-PB utilities averaged)."""
    if kind == "attention":
        return AttentionCritic(obs_width, n_actions, hidden)
    if kind == "sum":
        return AttentionCritic(obs_width, n_actions, hidden, attention=False)
    if kind == "mean":
        return AgentCritic(obs_width, n_actions, hidden)
    raise ValueError(f"critic {kind!r} is not 'attention', 'sum' or 'mean'")


def gumbel_softmax_st(logits: torch.Tensor, generator: torch.Generator, tau: float = 1.0) -> torch.Tensor:
    """Straight-through Gumbel-Softmax: one-hot sample forward, softmax gradient backward.

    Written out (not torch's F.gumbel_softmax) so that the noise comes from a seeded generator.
    """
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-10)
    y = F.softmax((logits - torch.log(-torch.log(u))) / tau, -1)
    hard = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return hard - y.detach() + y
