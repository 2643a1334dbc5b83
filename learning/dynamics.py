"""Data augmentation: a learned model of what the agents do not control, used for short
synthetic rollouts branched from real states (MBPO-style).

The placement's effect is known exactly (projection), so only two things are learned:
- the exogenous request process: an echo state network reads each slot's per-EN request shares
  L_t (N*I inputs) and predicts L_{t+1}; rollouts sample per-EN multinomial requests from the
  prediction, so synthetic slots carry realistic sampling noise;
- the reward: a ridge regression on a few pooled delivery features of (new placement, requests,
  old placement) -- how many needed bytes are at the home EN, at a neighbour, only in the
  cloud, how many distinct bytes are broadcast, how many bytes the placement change fetches.

Trust: on the most recent 20 % of real slots (held out from the fit) we measure the request
model's excess error over pure multinomial sampling noise (MSE / expected sampling MSE - 1) and
the reward model's NRMSE; the synthetic share of each batch is
share_max * clip(1 - max(excess, nrmse) / tolerance, 0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from learning.esn import EchoStateNetwork, nrmse
from learning.features import Layout, ema_update

HOLDOUT = 0.2
WASHOUT = 2  # slots of each episode before the reservoir state is trusted


def reward_features(layout: Layout, placement: np.ndarray, last: np.ndarray, prev: np.ndarray,
                    users: np.ndarray) -> np.ndarray:
    """Pooled delivery features (..., K) of a slot, in units of an average model's bytes.

    They mirror how the simulator spends time: PBs added to caches are loaded one after another
    per EN (from a neighbour that held them, else the cloud); needed PBs held nowhere come
    from the cloud; every needed PB is broadcast once (airtime grows with the union's bytes).
    """
    member = layout.membership.astype(np.float64)
    sizes = layout.pb_bytes.astype(np.float64)
    model_mean = max(float((member @ sizes).mean()), 1.0)
    needed = (last @ member) > 0                                        # (..., N, J)
    p, prev = placement.astype(bool), prev.astype(bool)
    anywhere, held_before = p.any(axis=-2), prev.any(axis=-2)           # (..., J)
    added = p & ~prev
    add_cloud = (added & ~held_before[..., None, :]) @ sizes / model_mean   # (..., N)
    add_bh = (added & held_before[..., None, :]) @ sizes / model_mean
    union = needed.any(axis=-2)
    union_rel = union @ sizes / model_mean
    cloud_rel = (union & ~anywhere) @ sizes / model_mean
    edge_rel = (union & anywhere) @ sizes / model_mean
    local_rel = ((needed & p) @ sizes / model_mean).mean(-1)
    need_rel = (needed @ sizes / model_mean).mean(-1)
    feats = [add_cloud.max(-1), add_cloud.mean(-1), add_bh.max(-1), add_bh.mean(-1),
             union_rel, cloud_rel, edge_rel, local_rel, need_rel]
    return np.stack(feats, -1)


@dataclass
class DynamicsModel:
    layout: Layout
    reservoir: int = 200
    spectral_radius: float = 0.9
    leak: float = 0.5
    ridge: float = 1e-3
    max_points: int = 20000
    tolerance: float = 1.0
    share_max: float = 0.5
    errors: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_in = self.layout.n_nodes * self.layout.n_models
        self.esn = EchoStateNetwork(n_in, n_in, reservoir=self.reservoir,
                                    spectral_radius=self.spectral_radius, leak=self.leak,
                                    ridge=self.ridge)
        self.reward_w = np.zeros(0)
        self.req: dict[str, list[np.ndarray]] = {"x": [], "u": [], "y": [], "n": []}
        self.rew: dict[str, list[np.ndarray]] = {"f": [], "r": []}
        self.share = 0.0

    def init(self, rng: np.random.Generator) -> "DynamicsModel":
        self.esn.init(rng)
        return self

    # ------------------------------------------------------------------ data from real slots
    def start_episode(self, last: np.ndarray) -> np.ndarray:
        """Reservoir state after the episode's first observation."""
        self._t = 0
        return self.esn.update(self.esn.zero_state(), last.reshape(-1))

    def observe_slot(self, x: np.ndarray, last: np.ndarray, next_last: np.ndarray,
                     placement_prev: np.ndarray, placement: np.ndarray, users: np.ndarray,
                     reward: float) -> np.ndarray:
        """Record one real slot; returns the reservoir state after `next_last`."""
        if self._t >= WASHOUT:
            self._push(self.req, x=x, u=last.reshape(-1), y=next_last.reshape(-1),
                       n=np.repeat(np.maximum(users, 1.0), self.layout.n_models))
        self._push(self.rew, f=reward_features(self.layout, placement, next_last, placement_prev, users),
                   r=np.array(reward))
        self._t += 1
        return self.esn.update(x, next_last.reshape(-1))

    def _push(self, store: dict[str, list[np.ndarray]], **values: np.ndarray) -> None:
        for k, v in values.items():
            store[k].append(np.asarray(v, dtype=np.float64))
            if len(store[k]) > self.max_points:
                del store[k][0]

    # ------------------------------------------------------------------ fit and trust
    def fit(self) -> dict[str, float]:
        """Fit on the older 80 % of the data, measure on the newest 20 %, refit on all."""
        n_req, n_rew = len(self.req["y"]), len(self.rew["r"])
        if n_req < 20 or n_rew < 20:
            self.share = 0.0
            return self.errors
        x, u, y, users = (np.array(self.req[k]) for k in ("x", "u", "y", "n"))
        f, r = np.array(self.rew["f"]), np.array(self.rew["r"])
        cut_q, cut_r = int(n_req * (1 - HOLDOUT)), int(n_rew * (1 - HOLDOUT))
        self.esn.fit(x[:cut_q], u[:cut_q], y[:cut_q])
        pred = self._shares(self.esn.predict(x[cut_q:], u[cut_q:]))
        mse = float(np.mean((pred - y[cut_q:]) ** 2))
        noise = float(np.mean(pred * (1 - pred) / users[cut_q:]))  # multinomial sampling variance
        persist = float(np.mean((u[cut_q:] - y[cut_q:]) ** 2))
        w = self._ridge(f[:cut_r], r[:cut_r])
        r_err = nrmse(self._design(f[cut_r:]) @ w, r[cut_r:])
        excess = max(0.0, mse / max(noise, 1e-12) - 1.0)
        self.errors = {
            "request_mse": mse, "request_noise_mse": noise, "request_persistence_mse": persist,
            "request_excess": excess, "reward_nrmse": r_err,
        }
        self.share = self.share_max * float(np.clip(1.0 - max(excess, r_err) / self.tolerance, 0.0, 1.0))
        self.errors["synthetic_share"] = self.share
        self.esn.fit(x, u, y)
        self.reward_w = self._ridge(f, r)
        return self.errors

    @staticmethod
    def _design(f: np.ndarray) -> np.ndarray:
        return np.concatenate([np.ones(f.shape[:-1] + (1,)), f], -1)

    def _ridge(self, f: np.ndarray, r: np.ndarray) -> np.ndarray:
        z = self._design(f)
        return np.linalg.solve(z.T @ z + self.ridge * np.eye(z.shape[1]), z.T @ r)

    def _shares(self, flat: np.ndarray) -> np.ndarray:
        """Clip predictions to a distribution over models per EN."""
        n, i = self.layout.n_nodes, self.layout.n_models
        p = np.clip(flat.reshape(flat.shape[:-1] + (n, i)), 0.0, None)
        total = p.sum(-1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / i)
        return p.reshape(flat.shape)

    # ------------------------------------------------------------------ synthetic slots
    def predict_reward(self, placement, last, prev, users) -> np.ndarray:
        return self._design(reward_features(self.layout, placement, last, prev, users)) @ self.reward_w

    def sample_next(self, x: np.ndarray, last: np.ndarray, users: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """Sampled next request shares (B, N, I) from the predicted distribution."""
        b, n, i = last.shape
        p = self._shares(self.esn.predict(x, last.reshape(b, -1))).reshape(b, n, i)
        counts = np.round(users).astype(np.int64)
        draws = np.zeros((b, n, i))
        for k in range(b):
            for m in range(n):
                if counts[k, m] > 0:
                    draws[k, m] = rng.multinomial(counts[k, m], p[k, m]) / counts[k, m]
        return draws

    def advance(self, x: np.ndarray, ema: np.ndarray, next_last: np.ndarray, alpha: float):
        b = next_last.shape[0]
        return self.esn.update(x, next_last.reshape(b, -1)), ema_update(ema, next_last, alpha)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        return {"esn": self.esn.state_dict(), "reward_w": self.reward_w, "req": self.req, "rew": self.rew,
                "share": self.share, "errors": dict(self.errors), "t": getattr(self, "_t", 0)}

    def load_state_dict(self, state: dict) -> None:
        self.esn.load_state_dict(state["esn"])
        self.reward_w = state["reward_w"]
        self.req = {k: list(v) for k, v in state["req"].items()}
        self.rew = {k: list(v) for k, v in state["rew"].items()}
        self.share, self.errors, self._t = float(state["share"]), dict(state["errors"]), int(state["t"])
