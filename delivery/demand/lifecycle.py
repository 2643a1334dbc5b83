"""`lifecycle`: models are released over time; each one's popularity rises, then decays with age.

Model i has a quality q_i (Zipf(gamma) weight of a random rank: a few models draw most
requests, as download counts on public hubs do) and a release slot r_i. Its request weight in
slot t is q_i g(t - r_i) with the age profile

    g(a) = 0 for a < 0,   g(a) = (1 - exp(-(a + 1) / rise)) (1 + a / decay) ** (-exponent),

a quick rise and a power-law relaxation, the shape measured for the attention paid to online
content after its release (Crane & Sornette, PNAS 105(41), 2008: views relax as a power law of
age with exponents about 0.4-1.6; Cha et al., IMC 2007: YouTube popularity falls with age).
Base models (kind "base", or any model another one names as its base) are released long before
slot 0 and do not decay (a base such as bert-base keeps being fetched for years). Derivatives
(fine-tunes, adapters): `initial_share` of them released before slot 0 with ages spread as if
the process had always run, the rest released during the run, `release_rate` per slot on
average (Poisson), each new release a derivative of a base chosen in proportion to that base's
family's current popularity: popular bases get the new fine-tunes.

The numbers (rise 1 slot, decay 8 slots, exponent 1.0, 2 releases per slot, half released
before slot 0) are guesses of this project, not measurements: docs/system-model.md, "Demand".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from delivery.demand.base import DemandProcess, zipf_weights


@dataclass
class LifecycleProcess(DemandProcess):
    n_models: int
    n_regions: int
    family: np.ndarray  # (I,) family index of each model (its base's index for derivatives)
    is_base: np.ndarray  # (I,) bool
    gamma: float
    release_rate: float
    initial_share: float
    rise_slots: float
    decay_slots: float
    decay_exponent: float
    rng: np.random.Generator
    release: np.ndarray = field(init=False)  # (I,) release slot; +inf while not yet released
    slot: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.quality = zipf_weights(self.n_models, self.gamma)[self.rng.permutation(self.n_models)]
        self.release = np.full(self.n_models, np.inf)
        self.release[self.is_base] = -np.inf
        derived = np.nonzero(~self.is_base)[0]
        n_initial = int(round(self.initial_share * len(derived)))
        early = self.rng.choice(derived, size=n_initial, replace=False)
        span = max(n_initial / max(self.release_rate, 1e-9), 1.0)  # as if released at the same rate
        self.release[early] = -np.floor(self.rng.uniform(0.0, span, size=n_initial)) - 1.0
        self._release_new()

    def weights(self, slot: int | None = None) -> np.ndarray:
        """(I,) request weight of each model in `slot` (default: the coming slot)."""
        t = self.slot if slot is None else slot
        age = t - self.release
        with np.errstate(invalid="ignore", over="ignore"):
            g = (1.0 - np.exp(-(age + 1.0) / self.rise_slots)) * (1.0 + age / self.decay_slots) ** (
                -self.decay_exponent
            )
        g = np.where(age < 0, 0.0, g)
        g = np.where(np.isneginf(self.release), 1.0, g)  # bases: always there, no decay
        return self.quality * g

    def region_popularity(self) -> np.ndarray:
        w = self.weights()
        if w.sum() <= 0:  # nothing released (no bases and no early releases): uniform
            w = np.ones(self.n_models)
        return np.repeat((w / w.sum())[None, :], self.n_regions, axis=0)

    def _advance(self) -> None:
        self._release_new()

    def _release_new(self) -> None:
        """Release the coming slot's new derivatives, bases chosen by family popularity."""
        count = int(self.rng.poisson(self.release_rate))
        w = self.weights()
        for _ in range(count):
            waiting = np.isposinf(self.release)
            if not waiting.any():
                return
            fams = np.unique(self.family[waiting])
            fam_pop = np.array([w[self.family == f].sum() for f in fams]) + 1e-12
            f = self.rng.choice(fams, p=fam_pop / fam_pop.sum())
            i = self.rng.choice(np.nonzero(waiting & (self.family == f))[0])
            self.release[i] = self.slot


def families(kinds: list[str], bases: list[str | None], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(family index per model, is_base) from a library's model kinds and base names.

    A model is a base if its kind is "base" or another model names it as its base; a model
    whose base is not in the library, and a library with no bases at all (synthetic), put
    each such model in a family of its own, released over time."""
    index = {n: i for i, n in enumerate(names)}
    named = {b for b in bases if b is not None}
    is_base = np.array([k == "base" or n in named for k, n in zip(kinds, names)])
    family = np.array([index[b] if (b is not None and b in index) else i for i, b in enumerate(bases)])
    return family, is_base
