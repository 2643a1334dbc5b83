"""Data augmentation: an echo state network forecasts request popularity; synthetic slots run
the REAL simulator (`CacheEnv.branch`: same users, fresh channels) with requests sampled from
that forecast, so every synthetic reward is computed by the simulator, never regressed.

Forecast: for every (EN, model) series the same small reservoir reads the slot's request share
L, its moving average E and the cumulative share C, and a ridge readout (shared by all N*I
series, so it has N*I samples per slot) predicts next slot's share; per EN the predictions are
clipped and normalised into a popularity distribution. The target L_{t+1} is a few users'
draws, mostly sampling noise, but its conditional mean is the popularity, which is what the
least-squares readout estimates.

Skill: every refit, on the newest 20 % of real slots (held out), the forecast's MSE against the
realised shares is compared with the two baselines a heuristic would use, the moving average E
(what recent-count policies see) and the cumulative share C (LFU's counts):
skill = 1 - MSE_esn / min(MSE_ema, MSE_cum). Sampling noise is in all three MSEs alike, so
skill <= 0 means the ESN knows nothing the counts do not. The synthetic share of each update
batch is share_max * clip(skill / skill_full, 0, 1): zero when the forecast has no skill.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from learning.esn import EchoStateNetwork
from learning.features import Snapshot

HOLDOUT = 0.2
WASHOUT = 2  # slots of each episode before the reservoir state is trusted
MAX_SLOTS = 4000  # real slots kept for fitting (oldest dropped)


def series_inputs(snap: Snapshot) -> np.ndarray:
    """(N*I, 3) per-series inputs [L, E, C] of a snapshot."""
    return np.stack([np.asarray(snap[k], dtype=np.float64).reshape(-1) for k in ("last", "ema", "cum")], -1)


@dataclass
class PopularityForecaster:
    n_nodes: int
    n_models: int
    reservoir: int = 40
    spectral_radius: float = 0.9
    leak: float = 0.5
    ridge: float = 1e-2
    share_max: float = 0.5
    skill_full: float = 0.1
    errors: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.esn = EchoStateNetwork(
            3, 1, reservoir=self.reservoir, spectral_radius=self.spectral_radius, leak=self.leak, ridge=self.ridge
        )
        self.data: dict[str, list[np.ndarray]] = {"x": [], "u": [], "y": [], "p": []}
        self.share = 0.0
        self._t = 0

    def init(self, rng: np.random.Generator) -> "PopularityForecaster":
        self.esn.init(rng)
        return self

    # ------------------------------------------------------------------ reservoir over real slots
    def start_episode(self, snap: Snapshot) -> np.ndarray:
        """Reservoir states (N*I, R) after the episode's first snapshot."""
        self._t = 0
        return self.esn.update(self.esn.zero_state((self.n_nodes * self.n_models,)), series_inputs(snap))

    def observe(
        self, x: np.ndarray, snap: Snapshot, next_snap: Snapshot, popularity: np.ndarray | None = None
    ) -> np.ndarray:
        """Record one real slot (inputs of `snap`, target = next slot's shares; `popularity`
        (N, I), the true request probabilities of that slot, for measurement only); returns the
        reservoir states after `next_snap`."""
        if self._t >= WASHOUT:
            self.data["x"].append(x.astype(np.float32))
            self.data["u"].append(series_inputs(snap).astype(np.float32))
            self.data["y"].append(np.asarray(next_snap["last"], dtype=np.float32).reshape(-1))
            truth = np.full(self.n_nodes * self.n_models, np.nan) if popularity is None else popularity
            self.data["p"].append(np.asarray(truth, dtype=np.float32).reshape(-1))
            if len(self.data["y"]) > MAX_SLOTS:
                for v in self.data.values():
                    del v[0]
        self._t += 1
        return self.advance(x, next_snap)

    def advance(self, x: np.ndarray, snap: Snapshot) -> np.ndarray:
        return self.esn.update(x, series_inputs(snap))

    # ------------------------------------------------------------------ fit and skill
    def fit(self) -> dict[str, float]:
        """Fit on the older 80 %, measure skill on the newest 20 %, refit on all; sets `share`."""
        slots = len(self.data["y"])
        if slots < 20:
            self.share = 0.0
            return self.errors
        x, u, y = (np.array(self.data[k], dtype=np.float64) for k in ("x", "u", "y"))  # (T, S, ...)
        cut = int(slots * (1 - HOLDOUT))
        flat = lambda a: a.reshape((-1,) + a.shape[2:])  # noqa: E731 - (T, S, ...) -> (T*S, ...)
        self.esn.fit(flat(x[:cut]), flat(u[:cut]), flat(y[:cut])[:, None])
        pred = self._normalise(self.esn.predict(flat(x[cut:]), flat(u[cut:]))[:, 0].reshape(y[cut:].shape))
        target = y[cut:]
        mse = float(np.mean((pred - target) ** 2))
        mse_ema = float(np.mean((u[cut:, :, 1] - target) ** 2))
        mse_cum = float(np.mean((u[cut:, :, 2] - target) ** 2))
        skill = 1.0 - mse / max(min(mse_ema, mse_cum), 1e-12)
        self.share = self.share_max * float(np.clip(skill / self.skill_full, 0.0, 1.0))
        self.errors = {
            "forecast_mse": mse,
            "ema_mse": mse_ema,
            "cumulative_mse": mse_cum,
            "forecast_skill": skill,
            "synthetic_share": self.share,
        }
        truth = np.array(self.data["p"][cut:], dtype=np.float64) if len(self.data["p"]) == slots else None
        if truth is not None and np.isfinite(truth).all():
            true = {
                "forecast_mse_true": float(np.mean((pred - truth) ** 2)),
                "ema_mse_true": float(np.mean((u[cut:, :, 1] - truth) ** 2)),
                "cumulative_mse_true": float(np.mean((u[cut:, :, 2] - truth) ** 2)),
            }
            best = max(min(true["ema_mse_true"], true["cumulative_mse_true"]), 1e-12)
            self.errors |= true | {"forecast_skill_true": 1.0 - true["forecast_mse_true"] / best}
        self.esn.fit(flat(x), flat(u), flat(y)[:, None])
        return self.errors

    def _normalise(self, flat: np.ndarray) -> np.ndarray:
        """Clip predictions (..., N*I) into a distribution over models per EN."""
        n, i = self.n_nodes, self.n_models
        p = np.clip(flat.reshape(flat.shape[:-1] + (n, i)), 0.0, None)
        total = p.sum(-1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / i)
        return p.reshape(flat.shape)

    # ------------------------------------------------------------------ synthetic requests
    def forecast(self, x: np.ndarray, snap: Snapshot) -> np.ndarray:
        """(N, I) forecast popularity of each model at each EN for the next slot."""
        raw = self.esn.predict(x, series_inputs(snap))[:, 0]
        return self._normalise(raw).reshape(self.n_nodes, self.n_models)

    @staticmethod
    def sample_requests(popularity: np.ndarray, user_home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(K,) one model per user, drawn from its home EN's forecast popularity."""
        cdf = np.cumsum(popularity, axis=1)
        u = rng.random(len(user_home)) * cdf[user_home, -1]
        return np.array(
            [min(int(np.searchsorted(cdf[h], v, side="right")), popularity.shape[1] - 1) for h, v in zip(user_home, u)]
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        stacked = {k: (np.array(v) if v else np.zeros((0,))) for k, v in self.data.items()}
        return {
            "esn": self.esn.state_dict(),
            "data": stacked,
            "share": self.share,
            "errors": dict(self.errors),
            "t": self._t,
        }

    def load_state_dict(self, state: dict) -> None:
        self.esn.load_state_dict(state["esn"])
        self.data = {k: [np.asarray(a) for a in v] if np.asarray(v).ndim > 1 else [] for k, v in state["data"].items()}
        self.data.setdefault("p", [])
        self.share, self.errors, self._t = float(state["share"]), dict(state["errors"]), int(state["t"])
