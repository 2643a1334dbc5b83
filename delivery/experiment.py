"""Running policies on scenarios: one run, and a multi-seed comparison with confidence intervals.

Seeding: the master seed S gives SeedSequence(S).spawn(2) = (simulator, policy). The simulator
splits its stream further (users, requests, channels, solver), so every policy run with seed S
sees the same users, requests and channels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import stats

from delivery.config import ScenarioConfig
from delivery.policies import make_policy
from delivery.simulator import Simulator, SlotResult
from pbkit.library import PBLibrary

BREAKDOWN_KEYS = ("waiting", "preparation", "airtime", "retransmission")


@dataclass
class RunResult:
    policy: str
    seed: int
    mode: str
    slots: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    def mean(self, key: str) -> float:
        return float(np.mean([s[key] for s in self.slots]))

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "seed": self.seed,
            "mode": self.mode,
            "slots": len(self.slots),
            "mean_delay_s": self.mean("mean_delay_s"),
            "breakdown_s": {k: float(np.mean([s["breakdown_s"][k] for s in self.slots])) for k in BREAKDOWN_KEYS},
            "hit_ratio_local": self.mean("hit_ratio_local"),
            "hit_ratio_edge": self.mean("hit_ratio_edge"),
            "delay_lower_bound_s": self.mean("delay_lower_bound_s"),
            "backhaul_bytes": int(sum(s["backhaul_bytes"] for s in self.slots)),
            "cloud_bytes": int(sum(s["cloud_bytes"] for s in self.slots)),
            "placement_change_bytes": int(sum(s["placement_change_bytes"] for s in self.slots)),
            "solver_calls": int(sum(s["solver_calls"] for s in self.slots)),
            "cache_hits": int(sum(s["cache_hits"] for s in self.slots)),
            "wall_s": self.wall_s,
        }


def seed_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    sim_seq, policy_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(sim_seq), np.random.default_rng(policy_seq)


def run_policy(
    config: ScenarioConfig,
    library: PBLibrary,
    policy_name: str,
    slots: int,
    seed: int,
    on_slot: Callable[[SlotResult], None] | None = None,
    **policy_kwargs: Any,
) -> RunResult:
    """Run one policy for `slots` slots; the policy's own `mode` (coarse, noncoop) wins."""
    policy = make_policy(policy_name, **policy_kwargs)
    mode = getattr(policy, "mode", None) or config.mode
    sim_rng, policy_rng = seed_streams(seed)
    sim = Simulator(config.replace(mode=mode), library, sim_rng)
    out = RunResult(policy=policy_name, seed=seed, mode=mode)
    start = time.perf_counter()
    for _ in range(slots):
        result = sim.step(policy.place(sim.policy_view(), policy_rng))
        out.slots.append(result.summary())
        if on_slot is not None:
            on_slot(result)
    out.wall_s = time.perf_counter() - start
    return out


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the Student-t interval; half-width 0 for a single value."""
    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return float(arr.mean()), 0.0
    half = stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr))
    return float(arr.mean()), float(half)


def compare(
    config: ScenarioConfig,
    library: PBLibrary,
    policies: list[str],
    seeds: list[int],
    slots: int,
    on_run: Callable[[RunResult], None] | None = None,
) -> dict[str, Any]:
    """Every policy on every seed (same seed = same scenario); per-policy means with 95 % CIs."""
    runs: dict[str, list[RunResult]] = {p: [] for p in policies}
    for seed in seeds:
        for name in policies:
            run = run_policy(config, library, name, slots, seed)
            runs[name].append(run)
            if on_run is not None:
                on_run(run)
    table = {}
    for name, rs in runs.items():
        summaries = [r.summary() for r in rs]
        row: dict[str, Any] = {"mode": rs[0].mode}
        for key in ("mean_delay_s", "hit_ratio_local", "hit_ratio_edge", "delay_lower_bound_s"):
            mean, half = t_interval([s[key] for s in summaries])
            row[key] = {"mean": mean, "ci95": half}
        row["breakdown_s"] = {k: float(np.mean([s["breakdown_s"][k] for s in summaries])) for k in BREAKDOWN_KEYS}
        row["per_seed_mean_delay_s"] = [s["mean_delay_s"] for s in summaries]
        row["wall_s"] = float(sum(s["wall_s"] for s in summaries))
        table[name] = row
    return {
        "config": config.to_dict(),
        "library": {"source": library.source, "synthetic": library.synthetic, **library.sharing()},
        "seeds": seeds,
        "slots": slots,
        "policies": table,
    }


def plot_compare(result: dict[str, Any], path) -> None:
    """Stacked delay breakdown per policy with the 95 % CI of the mean delay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["policies"])
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 4))
    bottom = np.zeros(len(names))
    for key in BREAKDOWN_KEYS:
        vals = np.array([result["policies"][n]["breakdown_s"][key] for n in names])
        ax.bar(names, vals, bottom=bottom, label=key)
        bottom += vals
    means = [result["policies"][n]["mean_delay_s"]["mean"] for n in names]
    cis = [result["policies"][n]["mean_delay_s"]["ci95"] for n in names]
    ax.errorbar(names, means, yerr=cis, fmt="none", ecolor="black", capsize=4)
    ax.set_ylabel("mean download delay per slot (s)")
    ax.set_title(f"{len(result['seeds'])} seeds x {result['slots']} slots, 95 % t-intervals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
