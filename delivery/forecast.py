"""Demand forecasts for proactive policies, from the request counts a real system observes.

Holt's linear trend method (double exponential smoothing; Holt 1957, in Hyndman and
Athanasopoulos, "Forecasting: principles and practice", 3rd ed., section 8.2): per EN and model,
a level and a trend of the per-slot request count, forecast h slots ahead as level + h trend.
A placement chosen before slot t serves its new PBs from slot t + 1 (a PB added to a cache is
loaded during slot t), while the last counts seen are slot t - 1's: so the horizon is 2.
The ESN forecaster of `learning/` is not used here (delivery never imports learning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HoltForecaster:
    alpha: float = 0.5  # level smoothing
    beta: float = 0.3  # trend smoothing
    level: np.ndarray | None = field(default=None, init=False)
    trend: np.ndarray | None = field(default=None, init=False)
    seen: int = field(default=0, init=False)

    def update(self, counts: np.ndarray) -> None:
        """Take one slot's (N, I) request counts."""
        x = np.asarray(counts, dtype=float)
        if self.level is None:
            self.level, self.trend = x.copy(), np.zeros_like(x)
        else:
            prev = self.level
            self.level = self.alpha * x + (1 - self.alpha) * (prev + self.trend)
            self.trend = self.beta * (self.level - prev) + (1 - self.beta) * self.trend
        self.seen += 1

    def forecast(self, horizon: int) -> np.ndarray | None:
        """(N, I) expected counts `horizon` slots after the last update (>= 0), None before any."""
        if self.level is None:
            return None
        return np.maximum(self.level + horizon * self.trend, 0.0)


@dataclass
class EMACounts:
    """Recency-weighted per-slot counts: ema <- alpha * counts + (1 - alpha) * ema."""

    alpha: float = 0.3
    value: np.ndarray | None = field(default=None, init=False)

    def update(self, counts: np.ndarray) -> None:
        x = np.asarray(counts, dtype=float)
        self.value = x.copy() if self.value is None else self.alpha * x + (1 - self.alpha) * self.value
