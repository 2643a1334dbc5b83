"""Common random numbers for the reward: the same slot replayed for a reference policy.

The simulator draws users, requests and channels from streams of their own (placements never
change them, `delivery.simulator.Simulator`), so a deep copy of the simulator taken before a
slot steps through exactly the slot the agents are about to see (`replay_slot`), and a second
simulator built from the same seed and stepped in lockstep sees every slot the agents see.
`ReferenceTrack` runs a reference policy on such a lockstep simulator, with its own placement and
its own cache loads in flight (it never sees the agents' placements). The reward is the paired
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
    """A reference policy (a name of `delivery.policies`) on a simulator of its own, built from
    the same seed as the agents' simulator and stepped in lockstep with it: its users, requests and
    channels are the agents' (the simulator draws them from streams no placement touches), while
    its placement-dependent state (placement, cache loads in flight) is its own. `check` compares
    each slot's requests with the agents' and raises if they ever differ."""

    policy_name: str
    sim: Simulator | None = None
    last_requests: np.ndarray | None = None
    _policy: object = field(default=None, repr=False)
    _rng: np.random.Generator | None = field(default=None, repr=False)

    def start(self, scenario, library, sim_seed: int) -> None:
        """A new episode: the reference's simulator from the agents' simulator seed."""
        from delivery.experiment import simulator_rng
        from delivery.policies import make_policy

        self.sim = Simulator(scenario, library, simulator_rng(sim_seed))  # the agents' seeding rule
        self._policy = make_policy(self.policy_name)
        self._rng = np.random.default_rng(sim_seed)
        self.last_requests = None

    @property
    def placement(self) -> np.ndarray | None:
        return None if self.sim is None else self.sim.placement

    def delay(self, agents_sim: Simulator) -> float:
        """The reference's mean delay on the slot `agents_sim` is about to simulate (its own
        simulator advances one slot; `agents_sim` is untouched). Raises RuntimeError when the two
        simulators are not at the same slot."""
        if self.sim is None or self.sim.slot != agents_sim.slot:
            raise RuntimeError("the reference simulator is not in step with the agents' (start it at reset)")
        result = self.sim.step(self._policy.place(self.sim.policy_view(), self._rng))
        self.last_requests = np.asarray(result.requests)
        return float(result.mean_delay_s)

    def check(self, requests: np.ndarray) -> None:
        """Raises RuntimeError if the agents' slot drew other requests than the reference's."""
        if self.last_requests is not None and not np.array_equal(self.last_requests, requests):
            raise RuntimeError("common random numbers broken: the reference saw other requests than the agents")
