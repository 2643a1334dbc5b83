"""How much of the learner's paired reward a placement's worth explains, under the cold start.

A fresh MAASN actor (random weights, the trainer's exploration) places every slot of `--slots`
real slots of the training environment, the reward paired against greedy replayed on the same
slot (what the learner trains on). Per slot the script records that reward and three summaries
of the slot's placement, computed from what the policy could see (no future): the expected-delay
proxy's saving (delivery/proxy.py: the placement's worth under the request counts so far), the
bytes newly loaded into caches, and the number of models complete at their home EN weighted by
their request shares. It prints each summary's correlation with the reward (95 % interval by
Fisher's z) and the share of the reward's variance the three explain together (R^2 of a least-
squares fit). `--agent NAME` runs a registry policy instead of the fresh actor (e.g. random).

A reward the placement barely moves is a reward a critic cannot learn a placement from: this is
the measurement behind results.md 2.0's "why".

    .venv/bin/python benchmarks/reward_signal.py --library hub-catalogue --slots 60 \\
        --out benchmarks/results/reward_signal_cold.json
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


def fisher_interval(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson r with its 95 % interval (Fisher's z, normal approximation)."""
    r = float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else float("nan")
    if not np.isfinite(r) or len(x) < 4:
        return {"r": r, "lo": float("nan"), "hi": float("nan"), "n": len(x)}
    z, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1.96 / np.sqrt(len(x) - 3)
    return {"r": r, "lo": float(np.tanh(z - half)), "hi": float(np.tanh(z + half)), "n": len(x)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="hub-catalogue")
    ap.add_argument("--config", default="quick", help="training config (its scenario, exploration, seed)")
    ap.add_argument("--agent", default="", help="a registry policy instead of the fresh actor")
    ap.add_argument("--slots", type=int, default=60)
    ap.add_argument("--set", action="append", default=[], help="training config key=value")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import tempfile

    from delivery.policies import make_policy
    from delivery.proxy import proxy_cost, proxy_instance
    from delivery.storage import complete_models
    from learning.config import TrainConfig
    from learning.features import observe
    from learning.trainer import Trainer
    from pbkit.library import resolve_library

    cfg = TrainConfig.build(args.config, args.set)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, resolve_library(args.library), Path(tmp), progress=False)
    env, layout = trainer.env, trainer.layout
    agent = make_policy(args.agent) if args.agent else None
    rng = np.random.default_rng(cfg.seed)
    rows = []
    while len(rows) < args.slots:
        env.reset(seed=int(rng.integers(2**31 - 1)))
        for _ in range(cfg.episode_slots):
            view = env.view()
            inst = proxy_instance(view)
            before = np.asarray(view.placement, dtype=bool)
            if agent is None:
                obs, _ = observe(layout, env.snapshot())
                actions, scores = trainer.learner.act(obs, explore=True)
                _, rewards, _, _, infos = env.step_joint(actions, scores)
            else:
                _, rewards, _, _, infos = env.step_placement(agent.place(view, rng))
            placement = infos[env.possible_agents[0]]["placement"]
            counts = np.asarray(view.request_counts, dtype=float) + 1.0
            model_share = counts / counts.sum(axis=1, keepdims=True)
            complete = complete_models(placement, layout.membership)
            rows.append(
                (
                    float(rewards[env.possible_agents[0]]),
                    (proxy_cost(inst, np.zeros_like(placement)) - proxy_cost(inst, placement)) / env.d_ref,
                    float(((placement & ~before) * layout.pb_bytes).sum()) / 1e6,
                    float((model_share * complete).sum()),
                )
            )
            if len(rows) >= args.slots:
                break
        print(f"{len(rows)}/{args.slots} slots", file=sys.stderr, flush=True)
    data = np.array(rows)
    reward, summaries = data[:, 0], data[:, 1:]
    names = ("proxy_saving", "loaded_mb", "complete_model_share")
    design = np.column_stack([np.ones(len(data)), summaries])
    coef, *_ = np.linalg.lstsq(design, reward, rcond=None)
    resid = reward - design @ coef
    out = {
        "command": " ".join(["benchmarks/reward_signal.py"] + (argv if argv is not None else sys.argv[1:])),
        "library": args.library,
        "agent": args.agent or "fresh actor (cold start)",
        "slots": len(data),
        "reward_mean": float(reward.mean()),
        "reward_sd": float(reward.std(ddof=1)),
        "correlation": {n: fisher_interval(summaries[:, i], reward) for i, n in enumerate(names)},
        "summary_mean": {n: float(summaries[:, i].mean()) for i, n in enumerate(names)},
        "summary_sd": {n: float(summaries[:, i].std(ddof=1)) for i, n in enumerate(names)},
        "r2_all": float(1.0 - resid.var() / reward.var()) if reward.var() > 0 else float("nan"),
    }
    print(json.dumps(out, indent=1))
    if args.out:
        atomic_write_json(args.out, versioned("bench.reward-signal", out), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
