"""Replay of compact transitions (placements, request shares, actions, rewards).

Observations are rebuilt from these on sampling (`features.observe`), so a transition costs
O(N(J + I)) bytes instead of O(N J F), and synthetic transitions from the data-augmentation
model have exactly the same form as real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELDS = ("placement", "ema", "last", "users", "action", "reward",
          "next_placement", "next_ema", "next_last", "next_reservoir")


@dataclass
class Replay:
    capacity: int
    n_nodes: int
    n_pbs: int
    n_models: int
    reservoir: int = 0

    def __post_init__(self) -> None:
        c, n, j, i = self.capacity, self.n_nodes, self.n_pbs, self.n_models
        self.data = {
            "placement": np.zeros((c, n, j), bool),
            "ema": np.zeros((c, n, i), np.float32),
            "last": np.zeros((c, n, i), np.float32),
            "users": np.zeros((c, n), np.float32),
            "action": np.zeros((c, n, j), np.int8),
            "reward": np.zeros((c,), np.float32),
            "next_placement": np.zeros((c, n, j), bool),
            "next_ema": np.zeros((c, n, i), np.float32),
            "next_last": np.zeros((c, n, i), np.float32),
            "next_reservoir": np.zeros((c, max(self.reservoir, 1)), np.float32),
        }
        self.ptr = 0
        self.size = 0

    def add(self, **items: np.ndarray) -> None:
        """Add a batch of transitions: every field with a leading batch dimension."""
        count = len(items["reward"])
        for k in range(count):
            for name, value in items.items():
                self.data[name][self.ptr] = value[k]
            self.ptr = (self.ptr + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.size, count)
        return {name: arr[idx] for name, arr in self.data.items()}

    def state_dict(self) -> dict:
        return {"data": {k: v[: self.size].copy() for k, v in self.data.items()}, "ptr": self.ptr,
                "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.ptr, self.size = int(state["ptr"]), int(state["size"])
        for k, v in state["data"].items():
            self.data[k][: len(v)] = v
