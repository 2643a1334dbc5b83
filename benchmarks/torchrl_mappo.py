"""MAPPO / IPPO from TorchRL on the learner's PettingZoo environment, through TorchRL's own loop.

The environment is `learning.env.CacheEnv` unchanged (the one MAASN-DA trains on), wrapped by
`torchrl.envs.PettingZooWrapper` (all ENs in one group, the env's action masks used by the
policy). TorchRL's `SyncDataCollector`, `GAE`, `ClipPPOLoss` and replay buffer do the training,
as in TorchRL's multi-agent PPO tutorial. The policy is shared by the ENs and decentralised: a
per-PB MLP over the agent's own (J, F) observation (its own row and its neighbours' messages),
a product of J categoricals over the action codes (drop, cache, ask neighbour d). The critic is
centralised for MAPPO (every agent's pooled observation) or per agent for IPPO.

Then the trained policy runs beside the heuristics on held-out seeds through the same delivery
harness as `learn eval` (`learning.evaluate.evaluate_policies`), paired per seed.

    .venv/bin/python benchmarks/torchrl_mappo.py --library edge-catalogue --frames 200 \\
        --seeds 2000-2009 --out benchmarks/results/torchrl_mappo.json

`--pool FILE ...` pools the result files of several training seeds (same held-out seeds).

Needs `pip install 'pbkit[marl]'` (torchrl, tensordict; torch stays as installed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import distributions as D
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class IndependentCategorical(D.Independent):
    """J independent categoricals (one per PB), one joint log-probability per agent."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__(D.Categorical(logits=logits), 1)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.base_dist.logits.argmax(-1)


class PBPolicy(nn.Module):
    """(..., J, F) observation and (..., J, A) mask -> (..., J, A) logits, weights shared over PBs."""

    def __init__(self, width: int, n_actions: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, n_actions)

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(obs)).masked_fill(~mask.bool(), -1e9)


class PooledObservation(nn.Module):
    """(..., N, J, F) -> (..., N, H): each agent's observation pooled over its PBs."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.Tanh())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).mean(-2)


def build(env, hidden: int, centralised: bool):
    from tensordict.nn import TensorDictModule, TensorDictSequential
    from torchrl.modules import MultiAgentMLP, ProbabilisticActor

    obs_spec = env.observation_spec["agents", "observation"]
    n_agents, _, width = obs_spec.shape
    n_actions = env.full_action_spec["agents", "action"].space.n
    policy_net = TensorDictModule(
        PBPolicy(width, n_actions, hidden),
        in_keys=[("agents", "observation"), ("agents", "action_mask")],
        out_keys=[("agents", "logits")],
    )
    policy = ProbabilisticActor(
        policy_net,
        in_keys={"logits": ("agents", "logits")},
        out_keys=[("agents", "action")],
        distribution_class=IndependentCategorical,
        return_log_prob=True,
        log_prob_key=("agents", "sample_log_prob"),
    )
    critic = TensorDictSequential(
        TensorDictModule(PooledObservation(width, hidden), [("agents", "observation")], [("agents", "pooled")]),
        TensorDictModule(
            MultiAgentMLP(
                n_agent_inputs=hidden,
                n_agent_outputs=1,
                n_agents=n_agents,
                centralised=centralised,
                share_params=True,
                depth=2,
                num_cells=hidden,
                activation_class=nn.Tanh,
            ),
            [("agents", "pooled")],
            [("agents", "state_value")],
        ),
    )
    return policy, critic


class TorchRLPolicy:
    """The trained TorchRL policy as a delivery caching policy (deterministic: argmax per PB),
    on the same snapshot/observe/place path as the environment."""

    mode = None

    def __init__(self, net: PBPolicy, ema_alpha: float, keep_bias: float) -> None:
        self.net, self.ema_alpha, self.keep_bias = net, ema_alpha, keep_bias
        self._previous = None
        self._layout = None

    def place(self, view, rng=None):
        from learning.features import CACHE, Layout, observe, place, snapshot

        if view.slot == 0 or self._layout is None:
            self._layout, self._previous = Layout.from_view(view), None
        snap = snapshot(view, self._previous, self.ema_alpha)
        self._previous = snap
        obs, _ = observe(self._layout, snap)
        with torch.no_grad():
            actions = self.net(torch.as_tensor(obs), torch.as_tensor(self._layout.action_mask())).argmax(-1).numpy()
        scores = np.where(actions == CACHE, 1.0, -1.0)
        return place(self._layout, actions, scores, snap["placement"], self.keep_bias)


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def pool(files: list[Path]) -> int:
    """Several runs (one per training seed, the same held-out seeds): each run's ratio to the best
    heuristic, then the learner pooled over the runs, paired per held-out seed and per run."""
    from delivery.interval import Interval
    from pbkit.common.schema import check_schema

    runs = [check_schema(json.loads(f.read_text()), "bench.torchrl-mappo", str(f)) for f in files]
    best = runs[0]["best_heuristic"]
    learner = next(name for name in runs[0]["policies"] if name.startswith("torchrl-"))
    base = np.asarray(runs[0]["policies"][best]["per_seed"])
    per_run = np.array([r["policies"][learner]["per_seed"] for r in runs])  # (runs, held-out seeds)
    for f, r in zip(files, runs):
        print(f"{f.name}: {learner} / {best} = {np.mean(r['policies'][learner]['per_seed']) / base.mean():.3f}")
    held_out = Interval.from_samples(per_run.mean(axis=0) - base)
    over_runs = Interval.from_samples(per_run.mean(axis=1) - base.mean())
    print(
        f"pooled over {len(runs)} runs: {learner} {per_run.mean():.3f} s, {best} {base.mean():.3f} s, ratio {per_run.mean() / base.mean():.3f}"
    )
    print(f"  paired per held-out seed {held_out.format('+.3f')} s; over runs {over_runs.format('+.3f')} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="edge-catalogue")
    ap.add_argument("--algorithm", choices=("mappo", "ippo"), default="mappo")
    ap.add_argument("--frames", type=int, default=200, help="real environment steps (slots) of training")
    ap.add_argument("--frames-per-batch", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatch", type=int, default=10)
    ap.add_argument("--episode-slots", type=int, default=20)
    ap.add_argument("--baseline", default="greedy", help="reward baseline replayed on each slot ('' for none)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default="2000-2009", help="held-out evaluation seeds")
    ap.add_argument("--eval-slots", type=int, default=20)
    ap.add_argument("--heuristics", default="greedy,lfu,random")
    ap.add_argument("--set", action="append", default=["beamformer=mrt"], help="scenario field=value")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--pool", type=Path, nargs="+", default=None, help="pool these result files (one per training seed) and exit"
    )
    args = ap.parse_args(argv)
    if args.pool:
        return pool(args.pool)

    from tensordict.nn import set_composite_lp_aggregate
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
    from torchrl.envs import PettingZooWrapper
    from torchrl.envs.utils import MarlGroupMapType
    from torchrl.objectives import ClipPPOLoss, ValueEstimators

    from delivery.config import ScenarioConfig
    from delivery.interval import Interval
    from learning.config import LearnConfigError
    from learning.env import CacheEnv
    from learning.evaluate import evaluate_policies, summarise
    from pbkit.common.schema import versioned
    from pbkit.common.settings import parse_set_overrides
    from pbkit.library import resolve_library

    set_composite_lp_aggregate(False).set()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    library = resolve_library(args.library)
    scenario = ScenarioConfig.from_dict(ScenarioConfig().to_dict() | parse_set_overrides(args.set, LearnConfigError))
    base = CacheEnv(library, scenario, args.episode_slots, seed=args.seed, baseline=args.baseline or None)
    env = PettingZooWrapper(
        env=base,
        group_map=MarlGroupMapType.ALL_IN_ONE_GROUP,
        categorical_actions=True,
        return_state=False,
        use_mask=False,
        done_on_any=True,
        seed=args.seed,
    )
    policy, critic = build(env, args.hidden, centralised=args.algorithm == "mappo")
    collector = Collector(
        env,
        policy,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.frames,
        device="cpu",
        auto_register_policy_transforms=False,
    )
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(args.frames_per_batch), sampler=SamplerWithoutReplacement(), batch_size=args.minibatch
    )
    loss = ClipPPOLoss(
        actor_network=policy, critic_network=critic, clip_epsilon=0.2, entropy_coeff=1e-3, normalize_advantage=False
    )
    loss.set_keys(
        reward=("agents", "reward"),
        action=("agents", "action"),
        sample_log_prob=("agents", "sample_log_prob"),
        value=("agents", "state_value"),
        done=("agents", "done"),
        terminated=("agents", "terminated"),
    )
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.95, lmbda=0.9)
    optim = torch.optim.Adam(loss.parameters(), 3e-4)

    curve = []
    t0 = time.perf_counter()
    for batch in collector:
        with torch.no_grad():
            loss.value_estimator(
                batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params
            )
        buffer.extend(batch.reshape(-1))
        for _ in range(args.epochs):
            for _ in range(args.frames_per_batch // args.minibatch):
                sample = buffer.sample()
                parts = loss(sample)
                total = parts["loss_objective"] + parts["loss_critic"] + parts["loss_entropy"]
                optim.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
                optim.step()
        collector.update_policy_weights_()
        reward = float(batch["next", "agents", "reward"].mean())
        curve.append({"frames": int(collector._frames), "mean_reward": reward, "wall_s": time.perf_counter() - t0})
        print(f"{args.algorithm} frames {curve[-1]['frames']}: mean reward {reward:+.4f}", file=sys.stderr, flush=True)
    collector.shutdown()
    train_wall = time.perf_counter() - t0

    net = next(m for m in policy.modules() if isinstance(m, PBPolicy))
    heuristics = [h for h in args.heuristics.split(",") if h]
    factories = {h: None for h in heuristics} | {
        f"torchrl-{args.algorithm}": lambda: TorchRLPolicy(net, base.ema_alpha, base.keep_bias)
    }
    values = evaluate_policies(scenario, library, factories, parse_seeds(args.seeds), args.eval_slots)
    result = versioned("bench.torchrl-mappo", summarise(values, heuristics, [f"torchrl-{args.algorithm}"]))
    result |= {
        "command": " ".join(["benchmarks/torchrl_mappo.py"] + (argv if argv is not None else sys.argv[1:])),
        "library": args.library,
        "train_frames": args.frames,
        "train_wall_s": train_wall,
        "curve": curve,
    }
    for name, row in sorted(result["policies"].items(), key=lambda kv: kv[1]["mean_delay_s"]):
        print(f"{name:>16}  {row['mean_delay_s']:.3f} s  {Interval.from_json(row['interval']).format_range('.3f')}")
    for name, row in result.get("paired", {}).items():
        print(f"{name} - {row['vs']}: {json.dumps({k: v for k, v in row.items() if k != 'vs'})}")
    if args.out:
        from pbkit.common.fs import atomic_write_json

        atomic_write_json(args.out, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
