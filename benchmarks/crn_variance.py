"""How much variance the common-random-numbers reward baseline removes (learning/baseline.py).

An acting policy places every slot of `--episodes` episodes of the learner's environment; each
slot is also replayed for the reference policy on its own placement track. Per slot the plain
reward -d / d_ref and the paired reward (d_reference - d) / d_ref are recorded; the script prints
their variances over slots and of the episode returns (sums over an episode, what a Monte-Carlo
or multi-step target carries), and the ratio. The paired reward's mean differs by a constant
(the reference's expected delay), not by anything the acting policy controls.

    .venv/bin/python benchmarks/crn_variance.py --library edge-catalogue --agent random \\
        --reference greedy --episodes 5 --slots 10 --out benchmarks/results/crn_variance.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbkit.common.fs import atomic_write_json  # noqa: E402
from pbkit.common.schema import versioned  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="edge-catalogue")
    ap.add_argument("--agent", default="random", help="acting policy (a registry name)")
    ap.add_argument("--reference", default="greedy", help="reference policy replayed on each slot")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--slots", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=["beamformer=mrt"], help="scenario field=value")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from delivery.config import ScenarioConfig
    from delivery.policies import make_policy
    from learning.config import LearnConfigError
    from learning.env import CacheEnv
    from pbkit.common.settings import parse_set_overrides
    from pbkit.library import resolve_library

    library = resolve_library(args.library)
    scenario = ScenarioConfig.from_dict(ScenarioConfig().to_dict() | parse_set_overrides(args.set, LearnConfigError))
    env = CacheEnv(library, scenario, args.slots, seed=args.seed, baseline=args.reference)
    agent = make_policy(args.agent)
    rng = np.random.default_rng(args.seed)
    plain, paired, plain_ret, paired_ret = [], [], [], []
    for episode in range(args.episodes):
        env.reset(seed=args.seed * 1000 + episode)
        ep_plain, ep_paired = [], []
        for _ in range(args.slots):
            _, rewards, _, _, infos = env.step_placement(agent.place(env.view(), rng))
            info = infos[env.possible_agents[0]]
            ep_plain.append(-info["mean_delay_s"] / env.d_ref)
            ep_paired.append(float(rewards[env.possible_agents[0]]))
        plain += ep_plain
        paired += ep_paired
        plain_ret.append(sum(ep_plain))
        paired_ret.append(sum(ep_paired))
        print(f"episode {episode}: return plain {plain_ret[-1]:+.3f}, paired {paired_ret[-1]:+.3f}", file=sys.stderr)
    out = {
        "command": " ".join(["benchmarks/crn_variance.py"] + (argv if argv is not None else sys.argv[1:])),
        "library": args.library,
        "agent": args.agent,
        "reference": args.reference,
        "slots": len(plain),
        "var_slot_plain": float(np.var(plain, ddof=1)),
        "var_slot_paired": float(np.var(paired, ddof=1)),
        "var_return_plain": float(np.var(plain_ret, ddof=1)),
        "var_return_paired": float(np.var(paired_ret, ddof=1)),
        "mean_slot_plain": float(np.mean(plain)),
        "mean_slot_paired": float(np.mean(paired)),
    }
    out["slot_variance_ratio"] = out["var_slot_paired"] / out["var_slot_plain"]
    out["return_variance_ratio"] = out["var_return_paired"] / out["var_return_plain"]
    print(json.dumps(out, indent=1))
    if args.out:
        atomic_write_json(args.out, versioned("bench.crn-variance", out), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
