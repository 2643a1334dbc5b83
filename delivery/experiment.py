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

from delivery.config import ScenarioConfig
from delivery.interval import Interval
from delivery.policies import Policy, make_policy
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
    """The one seeding rule: (simulator, policy) generators of master seed `seed`, from
    SeedSequence(seed).spawn(2). The learner's environment uses the same simulator stream, so its
    scenario at seed S is the one `pbkit sim run --seed S` runs."""
    sim_seq, policy_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(sim_seq), np.random.default_rng(policy_seq)


def simulator_rng(seed: int) -> np.random.Generator:
    """The simulator's generator of master seed `seed` (`seed_streams(seed)[0]`)."""
    return seed_streams(seed)[0]


def run_policy(
    config: ScenarioConfig,
    library: PBLibrary,
    policy: str | Policy,
    slots: int,
    seed: int,
    on_slot: Callable[[SlotResult], None] | None = None,
    **policy_kwargs: Any,
) -> RunResult:
    """Run one policy for `slots` slots on scenario seed `seed`: THE evaluation harness.

    `policy` is a registered name (made with `policy_kwargs`) or a policy object (anything with
    `name` and `place(view, rng)`, e.g. a learned policy). Seed s means the same users, channels
    and requests for every policy and every command (`sim run`, `sim compare`, `sweep`,
    `learn eval`, `learn report`). The policy's own `mode` (coarse, noncoop) wins over the
    config's. Raises ConfigError for an unknown policy name or a bad scenario, CapacityError for
    an infeasible placement.
    """
    if isinstance(policy, str):
        name, policy = policy, make_policy(policy, **policy_kwargs)
    else:
        name = str(getattr(policy, "name", type(policy).__name__))
    mode = getattr(policy, "mode", None) or config.mode
    # a bound such as fullcache runs on its own variant of the scenario (more room); same streams
    overrides = dict(getattr(policy, "scenario_overrides", None) or {})
    sim_rng, policy_rng = seed_streams(seed)
    sim = Simulator(config.replace(**overrides, mode=mode), library, sim_rng)
    names = [m.name for m in library.models]
    out = RunResult(policy=name, seed=seed, mode=mode)
    start = time.perf_counter()
    for _ in range(slots):
        result = sim.step(policy.place(sim.policy_view(), policy_rng))
        # each slot's requests by name, indexed by user: a replay (--requests) can be checked
        out.slots.append({**result.summary(), "requests": [names[i] for i in result.requests]})
        if on_slot is not None:
            on_slot(result)
    out.wall_s = time.perf_counter() - start
    return out


def paired_difference(
    values: list[float] | np.ndarray, reference: list[float] | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """Per-seed differences values - reference (same seeds): the interval of their mean
    (`Interval.to_json()` keys, in seconds), `ratio` of the means, `per_seed_diff`.

    Raises ValueError when the two lists differ in length or are empty."""
    a = np.asarray(values, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired difference: {a.shape} values against {b.shape} reference values")
    return {
        **Interval.from_samples(a - b, level).to_json(),
        "ratio": float(a.mean() / b.mean()) if b.mean() > 0 else float("nan"),
        "per_seed_diff": [float(x) for x in a - b],
    }


def heuristic_names() -> list[str]:
    """Policies a real system could run (delivery.registry roles heuristic and baseline): the
    candidates for "best heuristic" in comparisons."""
    from delivery.registry import policy_names

    return policy_names("heuristic") + policy_names("baseline")


def compare(
    config: ScenarioConfig,
    library: PBLibrary,
    policies: list[str] | dict[str, Callable[[], Policy] | None],
    seeds: list[int],
    slots: int,
    on_run: Callable[[RunResult], None] | None = None,
) -> dict[str, Any]:
    """Every policy on every seed (same seed = same scenario); per-policy means with 95 % CIs.

    `policies` is a list of registered names or a {name: factory} mapping (factory None: the
    registered policy of that name; else `factory()` gives a fresh policy object per seed). Each
    policy gets its paired per-seed difference to the best heuristic among those compared
    (`paired` in the result, with a 95 % t-interval). Raises what `run_policy` raises.
    """
    factories = dict.fromkeys(policies) if not isinstance(policies, dict) else dict(policies)
    runs: dict[str, list[RunResult]] = {p: [] for p in factories}
    for seed in seeds:
        for name, factory in factories.items():
            run = run_policy(config, library, name if factory is None else factory(), slots, seed)
            run.policy = name
            runs[name].append(run)
            if on_run is not None:
                on_run(run)
    table = {}
    for name, rs in runs.items():
        summaries = [r.summary() for r in rs]
        row: dict[str, Any] = {"mode": rs[0].mode}
        for key in ("mean_delay_s", "hit_ratio_local", "hit_ratio_edge", "delay_lower_bound_s"):
            row[key] = Interval.from_samples([s[key] for s in summaries]).to_json()
        row["breakdown_s"] = {k: float(np.mean([s["breakdown_s"][k] for s in summaries])) for k in BREAKDOWN_KEYS}
        row["per_seed_mean_delay_s"] = [s["mean_delay_s"] for s in summaries]
        row["wall_s"] = float(sum(s["wall_s"] for s in summaries))
        table[name] = row
    known = heuristic_names()
    heuristics = [n for n in table if n in known and factories[n] is None]
    paired: dict[str, Any] = {}
    if heuristics:
        best = min(heuristics, key=lambda n: table[n]["mean_delay_s"]["mean"])
        for name, row in table.items():
            paired[name] = {
                "vs": best,
                **paired_difference(row["per_seed_mean_delay_s"], table[best]["per_seed_mean_delay_s"]),
            }
    return {
        "paired_vs_best_heuristic": paired,
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
    cis = [Interval.from_json(result["policies"][n]["mean_delay_s"]).half_width for n in names]
    ax.errorbar(names, means, yerr=cis, fmt="none", ecolor="black", capsize=4)
    ax.set_ylabel("mean download delay per slot (s)")
    ax.set_title(f"{len(result['seeds'])} seeds x {result['slots']} slots, 95 % t-intervals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
