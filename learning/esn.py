"""Echo state network: a fixed random leaky-tanh reservoir with a ridge-regression readout.

Written here (not imported) so its few moving parts are visible: the reservoir is drawn once
from a generator and rescaled to a spectral radius below 1 (the echo-state property: the state
forgets its initial condition), only the linear readout is trained, in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbkit.errors import PbkitError


class EsnError(PbkitError, ValueError):
    """An echo-state-network setting is out of range."""


@dataclass
class EchoStateNetwork:
    """x_{t+1} = (1 - leak) x_t + leak tanh(W x_t + W_in [1; u_t]); y_t = W_out [1; x_t; u_t]."""

    n_inputs: int
    n_outputs: int
    reservoir: int = 200
    spectral_radius: float = 0.9
    leak: float = 0.5
    input_scale: float = 0.5
    density: float = 0.1
    ridge: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 < self.spectral_radius < 1.0:
            raise EsnError(f"spectral_radius {self.spectral_radius} is not in (0, 1)")
        if not 0.0 < self.leak <= 1.0:
            raise EsnError(f"leak {self.leak} is not in (0, 1]")
        if self.reservoir < 1 or self.n_inputs < 1 or self.n_outputs < 1:
            raise EsnError("reservoir, n_inputs and n_outputs must be positive")
        self.w = np.zeros((self.reservoir, self.reservoir))
        self.w_in = np.zeros((self.reservoir, self.n_inputs + 1))
        self.w_out = np.zeros((self.n_outputs, 1 + self.reservoir + self.n_inputs))
        self.fitted = False

    def init(self, rng: np.random.Generator) -> "EchoStateNetwork":
        """Draw the sparse reservoir and input weights; rescale to the spectral radius."""
        w = rng.standard_normal((self.reservoir, self.reservoir))
        w *= rng.random((self.reservoir, self.reservoir)) < self.density
        radius = float(np.max(np.abs(np.linalg.eigvals(w))))
        if radius == 0.0:  # a degenerate sparse draw; a dense one always has radius > 0
            w = rng.standard_normal((self.reservoir, self.reservoir))
            radius = float(np.max(np.abs(np.linalg.eigvals(w))))
        self.w = w * (self.spectral_radius / radius)
        self.w_in = rng.uniform(-self.input_scale, self.input_scale, (self.reservoir, self.n_inputs + 1))
        return self

    # ------------------------------------------------------------------ reservoir
    def zero_state(self, batch: tuple[int, ...] = ()) -> np.ndarray:
        return np.zeros(batch + (self.reservoir,))

    def update(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One reservoir step; x (..., R), u (..., n_inputs); works on batches."""
        u1 = np.concatenate([np.ones(u.shape[:-1] + (1,)), u], axis=-1)
        pre = x @ self.w.T + u1 @ self.w_in.T
        return (1.0 - self.leak) * x + self.leak * np.tanh(pre)

    def run(self, inputs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        """States after each input of a (T, n_inputs) sequence: (T, R)."""
        x = self.zero_state() if x0 is None else x0
        states = np.empty((len(inputs), self.reservoir))
        for t, u in enumerate(inputs):
            x = self.update(x, u)
            states[t] = x
        return states

    # ------------------------------------------------------------------ readout
    def features(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.concatenate([np.ones(x.shape[:-1] + (1,)), x, u], axis=-1)

    def fit(self, states: np.ndarray, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Ridge readout: W_out = Y^T Z (Z^T Z + ridge I)^-1 with Z = [1, x, u] rows."""
        z = self.features(states, inputs)
        gram = z.T @ z + self.ridge * np.eye(z.shape[1])
        self.w_out = np.linalg.solve(gram, z.T @ targets).T
        self.fitted = True

    def predict(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self.features(x, u) @ self.w_out.T

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray | bool]:
        return {"w": self.w, "w_in": self.w_in, "w_out": self.w_out, "fitted": self.fitted}

    def load_state_dict(self, state: dict) -> None:
        self.w, self.w_in, self.w_out = state["w"], state["w_in"], state["w_out"]
        self.fitted = bool(state["fitted"])


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square error divided by the target's standard deviation (0 = perfect, 1 = mean)."""
    std = float(np.std(target))
    rmse = float(np.sqrt(np.mean((prediction - target) ** 2)))
    return rmse / std if std > 0 else rmse


def mackey_glass(
    n: int,
    tau: int = 17,
    beta: float = 0.2,
    gamma: float = 0.1,
    p: int = 10,
    dt: float = 1.0,
    subsample: int = 1,
    x0: float = 1.2,
) -> np.ndarray:
    """The Mackey-Glass delay series (tau=17 is the standard chaotic benchmark), Euler-integrated."""
    history = int(tau / dt)
    steps = n * subsample + history
    x = np.full(steps + 1, x0)
    for t in range(history, steps):
        delayed = x[t - history]
        x[t + 1] = x[t] + dt * (beta * delayed / (1.0 + delayed**p) - gamma * x[t])
    return x[history + 1 :: subsample][:n]
