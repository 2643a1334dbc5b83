"""`diurnal`: each model has a time of day when it is most wanted; regions run offset clocks.

Model i's weight in region n at slot t is q_i (1 + A cos(2 pi (t / P - phi_i - o_n))): q_i a
Zipf(gamma) weight of a random rank, phi_i its peak phase (uniform), o_n region n's offset
(uniform in [0, 1) by default: business and residential areas peak at different hours), P the
period in slots, A the amplitude. Measured cellular traffic shows such daily cycles with
distinct profiles by area type (Xu et al., "Understanding mobile traffic patterns of large
scale cellular towers in urban environment", IMC 2015; the Telecom Italia Milan data set,
Barlacchi et al., Scientific Data 2, 2015). The values here (P = 24 slots, i.e. one placement
per hour; A = 0.8; offsets uniform) are guesses, not fitted to those data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delivery.demand.base import DemandProcess, zipf_weights


@dataclass
class DiurnalProcess(DemandProcess):
    n_models: int
    n_regions: int
    gamma: float
    period_slots: int
    amplitude: float
    rng: np.random.Generator
    slot: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.quality = zipf_weights(self.n_models, self.gamma)[self.rng.permutation(self.n_models)]
        self.phase = self.rng.uniform(size=self.n_models)
        self.offset = self.rng.uniform(size=self.n_regions)

    def region_popularity(self) -> np.ndarray:
        angle = 2 * np.pi * (self.slot / self.period_slots - self.phase[None, :] - self.offset[:, None])
        w = self.quality[None, :] * (1.0 + self.amplitude * np.cos(angle))
        return w / w.sum(axis=1, keepdims=True)
