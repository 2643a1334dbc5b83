"""Value decomposition: how per-agent Q_n combine into the team Q_tot.

QMIX: Q_tot = w2^T elu(W1^T q + b1) + b2 with W1, w2 >= 0 (absolute values of hypernetwork
outputs), so dQ_tot/dQ_n >= 0 and each agent's greedy choice agrees with the team's. The
hypernetworks read a permutation-invariant embedding of the global state (mean over PB rows).
VDN: Q_tot = sum_n Q_n. "none": independent learners, each Q_n regressed on the team reward.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from learning.networks import mlp


class StateEncoder(nn.Module):
    """Pools the global state's PB rows into one embedding: by attention (a learned query over
    the rows, so the PBs that decide the team's value can dominate it) or by the mean."""

    def __init__(self, state_features: int, embed: int, attention: bool = False, heads: int = 2) -> None:
        super().__init__()
        self.row = mlp([state_features, embed, embed])
        self.attention = attention
        if attention:
            self.query = nn.Parameter(torch.zeros(1, 1, embed))
            self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """state (B, J, Fs) -> (B, embed)."""
        rows = F.relu(self.row(state))
        if not self.attention:
            return rows.mean(-2)
        pooled, _ = self.attn(self.query.expand(rows.shape[0], 1, rows.shape[-1]), rows, rows, need_weights=False)
        return pooled.squeeze(1)


class QMixer(nn.Module):
    def __init__(self, n_agents: int, state_features: int, embed: int = 32, attention: bool = False) -> None:
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.encode = StateEncoder(state_features, embed, attention)
        self.hyper_w1 = mlp([embed, embed, n_agents * embed])
        self.hyper_b1 = nn.Linear(embed, embed)
        self.hyper_w2 = mlp([embed, embed, embed])
        self.hyper_b2 = mlp([embed, embed, 1])

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """q (B, N), state (B, J, Fs) -> Q_tot (B,)."""
        s = self.encode(state)
        w1 = torch.abs(self.hyper_w1(s)).view(-1, self.n_agents, self.embed)
        hidden = F.elu(torch.bmm(q.unsqueeze(1), w1).squeeze(1) + self.hyper_b1(s))
        w2 = torch.abs(self.hyper_w2(s))
        return (hidden * w2).sum(-1) + self.hyper_b2(s).squeeze(-1)


class VDNMixer(nn.Module):
    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return q.sum(-1)


def make_mixer(kind: str, n_agents: int, state_features: int, embed: int, attention: bool = False) -> nn.Module | None:
    """`attention`: the QMIX hypernetworks read the state pooled by attention over PBs."""
    if kind == "qmix":
        return QMixer(n_agents, state_features, embed, attention)
    if kind == "vdn":
        return VDNMixer()
    if kind == "none":
        return None
    raise ValueError(f"mixer {kind!r} is not 'qmix', 'vdn' or 'none'")
