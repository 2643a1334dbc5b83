"""The caching MDP as a PettingZoo ParallelEnv over the delivery simulator: one agent per EN.

MDP (docs/learning.md has the full statement):
- observation of agent n: (J, F) float32, row j = own features of PB j at EN n followed by the
  same PB's features at each of the D (padded) neighbours (see `learning.features.observe`);
- action of agent n: MultiDiscrete([2 + D] * J), per PB: 0 drop, 1 cache, 2 + d ask neighbour d to
  hold it (pull from it when needed). Masks (infos["action_mask"], `action_masks()`) forbid pulls
  from padded neighbours and PBs bigger than a cache; a masked code acts as drop;
- the joint action is projected onto a feasible placement (`features.project`), so capacity
  holds by construction, then the simulator draws the slot's requests and channels and delivers;
- reward (shared by all agents): -(slot mean delay) / d_ref, d_ref = t_c + 8 * mean model bytes / r_c
  (fetching an average model from the cloud), so rewards are O(1) across libraries;
- episode: `episode_slots` slots, then every agent is truncated (not terminated: the process
  goes on, so learners bootstrap through the cut).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from delivery.config import ScenarioConfig
from delivery.simulator import SlotResult, Simulator
from learning.features import (
    NEIGHBOUR_FEATURES,
    OWN_FEATURES,
    STATE_FEATURES,
    Layout,
    ema_update,
    observe,
    effective_actions,
    project,
    request_share,
)
from pbkit.library import PBLibrary


def reference_delay(scenario: ScenarioConfig, library: PBLibrary) -> float:
    """d_ref: time to fetch an average model from the cloud (the reward's unit)."""
    mean_bytes = float(library.model_bytes().mean())
    return float(scenario.cloud_latency_s + 8.0 * mean_bytes / scenario.cloud_bps)


class CacheEnv(ParallelEnv):
    metadata = {"name": "pbkit_cache_v0", "render_modes": []}

    def __init__(self, library: PBLibrary, scenario: ScenarioConfig, episode_slots: int = 20,
                 ema_alpha: float = 0.3, seed: int = 0) -> None:
        self.library = library
        self.scenario = scenario
        self.episode_slots = int(episode_slots)
        self.ema_alpha = float(ema_alpha)
        self.sim = Simulator(scenario, library, np.random.default_rng(seed))
        self.layout = Layout.from_view(self.sim.policy_view())
        self.d_ref = reference_delay(scenario, library)
        self.possible_agents = [f"en_{n}" for n in range(self.layout.n_nodes)]
        self.state_space = spaces.Box(-np.inf, np.inf, (self.layout.n_pbs * STATE_FEATURES,), np.float32)
        self.agents: list[str] = []
        self._mask = self.layout.action_mask()
        self._np_random = np.random.default_rng(seed)
        self.slot = 0
        self.last_result: SlotResult | None = None
        self._read_view()

    # ------------------------------------------------------------------ spaces
    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        width = OWN_FEATURES + self.layout.max_degree * NEIGHBOUR_FEATURES
        return spaces.Box(-np.inf, np.inf, (self.layout.n_pbs, width), np.float32)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.MultiDiscrete(np.full(self.layout.n_pbs, self.layout.n_actions))

    # ------------------------------------------------------------------ compact state
    def _read_view(self) -> None:
        view = self.sim.policy_view()
        self.users = np.asarray(view.users_per_node, dtype=np.float64)
        self.placement = np.asarray(view.placement, dtype=bool).copy()
        self.last = request_share(np.asarray(view.last_requests, dtype=np.float64), self.users)

    def compact(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(placement, ema, last, users): everything the observations are built from."""
        return self.placement.copy(), self.ema.copy(), self.last.copy(), self.users.copy()

    def _observations(self) -> dict[str, np.ndarray]:
        obs, self._state = observe(self.layout, self.placement, self.ema, self.last, self.users)
        return {a: obs[n] for n, a in enumerate(self.possible_agents)}

    def state(self) -> np.ndarray:
        return self._state.reshape(-1)

    def action_masks(self) -> np.ndarray:
        """(N, J, A) int8 mask of allowed action codes."""
        return self._mask

    def _infos(self, extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        return {a: {"action_mask": self._mask[n], **(extra or {})} for n, a in enumerate(self.possible_agents)}

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random = np.random.default_rng(seed)
        sim_seed = int(self._np_random.integers(2**63 - 1))
        self.sim = Simulator(self.scenario, self.library, np.random.default_rng(sim_seed))
        layout = Layout.from_view(self.sim.policy_view())
        if not layout.same_as(self.layout):  # spaces are fixed per env; the layout must be too
            raise ValueError("the scenario's topology or capacities changed between resets")
        self._read_view()
        self.ema = self.last.copy()
        self.slot = 0
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def joint_action(self, actions: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(actions[a], dtype=np.int64) for a in self.possible_agents])

    def step_joint(self, actions: np.ndarray, priority: np.ndarray | None = None):
        """Step with an (N, J) action array; `priority` (N, J) orders each EN's admissions."""
        actions = np.where(
            np.take_along_axis(self._mask, np.clip(actions, 0, self.layout.n_actions - 1)[..., None], -1)[..., 0] > 0,
            actions, 0)
        placement = project(self.layout, actions, priority)
        result = self.sim.step(placement)
        self.last_result = result
        self.slot += 1
        self._read_view()
        self.ema = ema_update(self.ema, self.last, self.ema_alpha)
        reward = -float(result.mean_delay_s) / self.d_ref
        done = self.slot >= self.episode_slots
        obs = self._observations()
        info = {"mean_delay_s": float(result.mean_delay_s), "hit_ratio_local": float(result.hit_ratio_local),
                "placement": placement,
                "effective_actions": effective_actions(self.layout, actions, placement)}
        rewards = {a: reward for a in self.possible_agents}
        terminated = {a: False for a in self.possible_agents}
        truncated = {a: done for a in self.possible_agents}
        infos = self._infos(info)
        if done:
            self.agents = []
        return obs, rewards, terminated, truncated, infos

    def step(self, actions: dict[str, np.ndarray]):
        return self.step_joint(self.joint_action(actions))
