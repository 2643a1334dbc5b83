"""The caching MDP as a PettingZoo ParallelEnv over the delivery simulator: one agent per EN.

MDP (docs/learning.md has the full statement):
- observation of agent n: (J, F) float32, row j = own features of PB j at EN n followed by the
  same PB's features at each of the D (padded) neighbours (see `learning.features.observe`);
- action of agent n: MultiDiscrete([2 + D] * J), per PB: 0 drop, 1 cache, 2 + d ask neighbour d to
  hold it (pull from it when needed). Masks (infos["action_mask"], `action_masks()`) forbid pulls
  from padded neighbours and PBs bigger than a cache; a masked code acts as drop;
- the joint action and the actor's per-PB scores become a placement that fills every cache in
  score order (`features.place`, with a keep bias for held PBs), so capacity holds by
  construction; then the simulator draws the slot's requests and channels and delivers;
- reward (shared by all agents): -(slot mean delay) / d_ref, d_ref = t_c + 8 * mean model bytes / r_c
  (fetching an average model from the cloud), so rewards are O(1) across libraries; with
  `baseline=NAME` the paired difference (NAME's delay on the same slot replayed - the agents'
  delay) / d_ref instead (common random numbers, `learning.baseline`);
- episode: `episode_slots` slots, then every agent is truncated (not terminated: the process
  goes on, so learners bootstrap through the cut).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from delivery.config import ScenarioConfig
from delivery.experiment import simulator_rng
from delivery.simulator import Simulator, SlotResult
from learning.baseline import ReferenceTrack
from learning.features import (
    ASK_BONUS,
    CACHE,
    NEIGHBOUR_FEATURES,
    OWN_FEATURES,
    STATE_FEATURES,
    Layout,
    Snapshot,
    effective_actions,
    observe,
    place,
    snapshot,
)
from pbkit.library import PBLibrary


def reference_delay(scenario: ScenarioConfig, library: PBLibrary) -> float:
    """d_ref: time to fetch an average model from the cloud (the reward's unit)."""
    mean_bytes = float(library.model_bytes().mean())
    return float(scenario.cloud_latency_s + 8.0 * mean_bytes / scenario.cloud_bps)


class CacheEnv(ParallelEnv):
    metadata = {"name": "pbkit_cache_v1", "render_modes": []}

    def __init__(
        self,
        library: PBLibrary,
        scenario: ScenarioConfig,
        episode_slots: int = 20,
        ema_alpha: float = 0.3,
        seed: int = 0,
        keep_bias: float = 0.5,
        baseline: str | None = None,
        ask_bonus: float = ASK_BONUS,
    ) -> None:
        self.library = library
        self.scenario = scenario
        self.episode_slots = int(episode_slots)
        self.ema_alpha = float(ema_alpha)
        self.keep_bias = float(keep_bias)
        self.ask_bonus = float(ask_bonus)  # 0 when the scores already price the asks (value learner)
        self.reference = ReferenceTrack(baseline) if baseline else None
        if self.reference is not None:
            self.reference.start(scenario, library, seed)  # in step with self.sim until a reset
        self.forecaster = None  # optional callable(snapshot) -> (N, I) forecast of the next shares
        self.sim = Simulator(scenario, library, simulator_rng(seed))  # the harness's seeding rule
        self.layout = Layout.from_view(self.sim.policy_view())
        self.d_ref = reference_delay(scenario, library)
        self.possible_agents = [f"en_{n}" for n in range(self.layout.n_nodes)]
        self.state_space = spaces.Box(-np.inf, np.inf, (self.layout.n_pbs * STATE_FEATURES,), np.float32)
        self.agents: list[str] = []
        self._mask = self.layout.action_mask()
        self._np_random = np.random.default_rng(seed)
        self.slot = 0
        self.last_result: SlotResult | None = None
        self.snap: Snapshot = snapshot(self.sim.policy_view(), None, self.ema_alpha)

    # ------------------------------------------------------------------ spaces
    @functools.lru_cache(maxsize=None)  # noqa: B019 (PettingZoo asks for the same space object)
    def observation_space(self, agent: str) -> spaces.Space:
        width = OWN_FEATURES + self.layout.max_degree * NEIGHBOUR_FEATURES
        return spaces.Box(-np.inf, np.inf, (self.layout.n_pbs, width), np.float32)

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.MultiDiscrete(np.full(self.layout.n_pbs, self.layout.n_actions))

    # ------------------------------------------------------------------ compact state
    def snapshot(self) -> Snapshot:
        """The compact state the observations are built from (a copy)."""
        return {k: np.array(v, copy=True) for k, v in self.snap.items()}

    def view(self):
        """What a caching policy sees now (`delivery.simulator.PolicyView`)."""
        return self.sim.policy_view()

    def _next_snapshot(self) -> Snapshot:
        snap = snapshot(self.sim.policy_view(), self.snap, self.ema_alpha)
        if self.forecaster is not None:
            snap["forecast"] = np.asarray(self.forecaster(snap), dtype=np.float64)
        return snap

    def _observations(self) -> dict[str, np.ndarray]:
        obs, self._state = observe(self.layout, self.snap)
        return {a: obs[n] for n, a in enumerate(self.possible_agents)}

    def state(self) -> np.ndarray:
        return self._state.reshape(-1)

    def action_masks(self) -> np.ndarray:
        """(N, J, A) int8 mask of allowed action codes."""
        return self._mask

    def _infos(self, extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        return {a: {"action_mask": self._mask[n], **(extra or {})} for n, a in enumerate(self.possible_agents)}

    # ------------------------------------------------------------------ random state (checkpoints)
    def rng_state(self) -> dict:
        return self._np_random.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._np_random.bit_generator.state = state

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random = np.random.default_rng(seed)
        sim_seed = int(self._np_random.integers(2**63 - 1))
        self.sim = Simulator(self.scenario, self.library, simulator_rng(sim_seed))
        layout = Layout.from_view(self.sim.policy_view())
        if not layout.same_as(self.layout):  # spaces are fixed per env; the layout must be too
            raise ValueError("the scenario's topology or capacities changed between resets")
        self.snap = snapshot(self.sim.policy_view(), None, self.ema_alpha)
        self.slot = 0
        if self.reference is not None:
            self.reference.start(self.scenario, self.library, sim_seed)
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def branch(self, seed: int) -> "CacheEnv":
        """A copy of the current state (users, placement, request history, slot) whose future
        channels and requests are drawn from `seed` instead: the real simulator on fresh draws,
        for synthetic slots (data augmentation)."""
        twin = copy.copy(self)
        sim = Simulator(self.scenario, self.library, simulator_rng(seed), topology=self.sim.topology)
        sim.placement = self.sim.placement.copy()
        sim.request_counts = self.sim.request_counts.copy()
        sim.last_requests = self.sim.last_requests.copy()
        sim.slot = self.sim.slot
        twin.sim, twin.snap, twin.agents = sim, self.snapshot(), list(self.possible_agents)
        twin.reference = None  # synthetic slots: no reference (their requests are the forecast's)
        twin._np_random = np.random.default_rng(seed)
        return twin

    def joint_action(self, actions: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(actions[a], dtype=np.int64) for a in self.possible_agents])

    def step_joint(self, actions: np.ndarray, scores: np.ndarray | None = None, requests: np.ndarray | None = None):
        """Step with an (N, J) action array; `scores` (N, J) rank each EN's PBs (default: its
        "cache" choices first). The caches are filled from the ranking (`features.place`)."""
        actions = np.asarray(actions)
        ok = (actions >= 0) & (actions < self.layout.n_actions)
        safe = np.clip(actions, 0, self.layout.n_actions - 1)
        allowed = np.take_along_axis(self._mask, safe[..., None], -1)[..., 0] > 0
        actions = np.where(ok & allowed, safe, 0)
        if scores is None:
            scores = np.where(actions == CACHE, 1.0, -1.0)
        placement = place(self.layout, actions, scores, self.snap["placement"], self.keep_bias, self.ask_bonus)
        return self.step_placement(placement, actions, requests)

    def step_placement(
        self, placement: np.ndarray, actions: np.ndarray | None = None, requests: np.ndarray | None = None
    ):
        """Step with a feasible placement (N, J); `requests` (K,) replaces the slot's drawn
        requests (synthetic slots). Effective actions: see `features.effective_actions`."""
        reference = None
        if self.reference is not None and requests is None:
            reference = self.reference.delay(self.sim)  # the same slot, before it is drawn
        result = self.sim.step(placement, requests=requests)
        if reference is not None:
            self.reference.check(result.requests)
        self.last_result = result
        self.slot += 1
        self.snap = self._next_snapshot()
        delay = float(result.mean_delay_s)
        reward = (-delay if reference is None else reference - delay) / self.d_ref
        done = self.slot >= self.episode_slots
        obs = self._observations()
        acts = np.zeros(placement.shape, dtype=np.int64) if actions is None else actions
        info = {
            "mean_delay_s": delay,
            "reference_delay_s": float("nan") if reference is None else reference,
            "hit_ratio_local": float(result.hit_ratio_local),
            "placement": placement,
            "effective_actions": effective_actions(self.layout, acts, placement),
        }
        rewards = {a: reward for a in self.possible_agents}
        terminated = {a: False for a in self.possible_agents}
        truncated = {a: done for a in self.possible_agents}
        infos = self._infos(info)
        if done:
            self.agents = []
        return obs, rewards, terminated, truncated, infos

    def step(self, actions: dict[str, np.ndarray]):
        return self.step_joint(self.joint_action(actions))
