"""Common random numbers for the reward: the same slot replayed for a reference policy.

The simulator draws users, requests and channels from streams of their own (placements never
change them, `delivery.simulator.Simulator`), so a deep copy of the simulator taken before a
slot steps through exactly the slot the agents are about to see. `ReferenceTrack` keeps a
reference policy's own placement from slot to slot (it never sees the agents' placements) and,
each slot, replays the agents' slot on such a copy with that placement. The reward is the paired
difference (reference delay - agents' delay) / d_ref.

Why this leaves the learning problem unchanged: the reference's delays depend on the exogenous
draws and its own placements only, never on the agents' actions, so the baseline adds the same
expected amount to every policy's return; what it removes is the slot-to-slot noise that both
delays share (a slot with many large models is slow for every placement). The reference is an
input of the reward only, never of an observation or of the critic's state.
`benchmarks/crn_variance.py` measures the variance it removes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from delivery.simulator import Simulator, SlotResult


def twin(sim: Simulator) -> Simulator:
    """A copy of `sim` whose next slot draws the same requests and channels (all random streams
    and the request process are copied); the library and the beamformer designer are shared
    (read-only data and a cache of solved designs)."""
    memo = {id(sim.library): sim.library, id(sim.designer): sim.designer}
    return copy.deepcopy(sim, memo)


def replay_slot(sim: Simulator, placement: np.ndarray) -> SlotResult:
    """The slot `sim` is about to simulate, delivered with `placement` on a copy (sim unchanged)."""
    return twin(sim).step(placement)


@dataclass
class ReferenceTrack:
    """A reference policy (a name of `delivery.policies`) on its own placement track, replayed on
    the agents' slots. `rng` feeds the policy's own tie-breaking only."""

    policy_name: str
    seed: int = 0
    placement: np.ndarray | None = None
    _policy: object = field(default=None, repr=False)
    _rng: np.random.Generator | None = field(default=None, repr=False)

    def reset(self, seed: int) -> None:
        from delivery.policies import make_policy

        self._policy = make_policy(self.policy_name)
        self._rng = np.random.default_rng(seed)
        self.placement = None

    def delay(self, sim: Simulator) -> float:
        """The reference's mean delay on the slot `sim` is about to simulate (sim unchanged)."""
        if self._policy is None:
            self.reset(self.seed)
        ref = twin(sim)
        ref.placement = np.zeros_like(sim.placement) if self.placement is None else self.placement.copy()
        placement = self._policy.place(ref.policy_view(), self._rng)
        result = ref.step(placement)
        self.placement = np.asarray(ref.placement, dtype=bool).copy()
        return float(result.mean_delay_s)
