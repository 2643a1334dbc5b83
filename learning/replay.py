"""Replay of compact transitions (snapshots before and after, effective actions, rewards).

Observations are rebuilt from the snapshots on sampling (`features.observe`), so a transition
costs O(N(J + I)) numbers instead of O(N J F); synthetic transitions (data augmentation) have
exactly the same form as real ones and live in a buffer of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learning.features import SNAPSHOT_KEYS, Snapshot


@dataclass
class Replay:
    capacity: int
    n_nodes: int
    n_pbs: int
    n_models: int

    def __post_init__(self) -> None:
        c, n, j, i = self.capacity, self.n_nodes, self.n_pbs, self.n_models
        shapes = {
            "placement": ((n, j), bool),
            "ema": ((n, i), np.float32),
            "last": ((n, i), np.float32),
            "cum": ((n, i), np.float32),
            "forecast": ((n, i), np.float32),
            "age": ((n, i), np.float32),
            "users": ((n,), np.float32),
            "phase": ((), np.float32),
        }
        self.data: dict[str, np.ndarray] = {}
        for prefix in ("", "next_"):
            for key in SNAPSHOT_KEYS:
                shape, dtype = shapes[key]
                self.data[prefix + key] = np.zeros((c,) + shape, dtype)
        self.data["action"] = np.zeros((c, n, j), np.int8)
        self.data["reward"] = np.zeros((c,), np.float32)
        self.data["discount"] = np.zeros((c,), np.float32)  # gamma^k of the k-step return
        self.ptr = 0
        self.size = 0

    def add(
        self, snap: Snapshot, action: np.ndarray, reward: float, next_snap: Snapshot, discount: float = 0.0
    ) -> None:
        """Add one transition: `reward` is the (multi-step) return up to `next_snap`, `discount`
        the factor of the bootstrap from `next_snap` (gamma^k for a k-step return)."""
        for key in SNAPSHOT_KEYS:
            self.data[key][self.ptr] = snap[key]
            self.data["next_" + key][self.ptr] = next_snap[key]
        self.data["action"][self.ptr] = action
        self.data["reward"][self.ptr] = reward
        self.data["discount"][self.ptr] = discount
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.size, count)
        return {name: arr[idx] for name, arr in self.data.items()}

    def state_dict(self) -> dict:
        return {"data": {k: v[: self.size].copy() for k, v in self.data.items()}, "ptr": self.ptr, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.ptr, self.size = int(state["ptr"]), int(state["size"])
        for k, v in state["data"].items():
            self.data[k][: len(v)] = v


def split(batch: dict[str, np.ndarray]) -> tuple[Snapshot, Snapshot]:
    """(snapshots, next snapshots) of a sampled batch."""
    return ({k: batch[k] for k in SNAPSHOT_KEYS}, {k: batch["next_" + k] for k in SNAPSHOT_KEYS})


@dataclass
class NStep:
    """Turns one-step transitions of an episode into `n`-step ones: the return
    r_t + g r_{t+1} + ... + g^(k-1) r_{t+k-1} with bootstrap factor g^k from the snapshot k slots
    later (k = n, or fewer at the episode's cut: episodes end by truncation, so every transition
    still bootstraps). A load pays off a slot after it is made, so a one-step target sees its cost
    and not its gain."""

    n: int
    gamma: float
    pending: list = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.pending = []

    def push(self, snap: Snapshot, action: np.ndarray, reward: float, next_snap: Snapshot, out: Replay) -> None:
        self.pending.append((snap, action, reward, next_snap))
        if len(self.pending) >= self.n:
            self._emit(out)

    def flush(self, out: Replay) -> None:
        """The episode ended: emit the shorter returns still pending."""
        while self.pending:
            self._emit(out)

    def _emit(self, out: Replay) -> None:
        ret, g = 0.0, 1.0
        for _, _, r, _ in self.pending:
            ret += g * r
            g *= self.gamma
        snap, action = self.pending[0][0], self.pending[0][1]
        out.add(snap, action, ret, self.pending[-1][3], g)
        self.pending.pop(0)
