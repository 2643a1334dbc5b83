"""The training loop: config-driven, one master seed, checkpoints that resume bit-exactly.

Seeding: SeedSequence(seed) spawns independent streams for the environment (episode seeds),
replay sampling, the data-augmentation model, and a torch generator for Gumbel noise; torch's
global seed is set from the same master seed (network initialisation). A checkpoint is written
at every evaluation (always at an episode boundary, so no simulator state is in flight) and
carries every generator's state, the replay buffers, the ESN and the optimisers, so resuming
continues the same run with the same numbers.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from delivery.config import ScenarioConfig
from learning.config import LearnConfigError, TrainConfig
from learning.dynamics import DynamicsModel
from learning.env import CacheEnv
from learning.errors import CheckpointError
from learning.evaluate import evaluate
from learning.features import effective_actions, observe, project
from learning.maasn import Maasn
from learning.policy import LearnedPolicy
from learning.replay import Replay
from pbkit.library import PBLibrary

CHECKPOINT = "checkpoint.pt"


def scenario_of(cfg: TrainConfig) -> ScenarioConfig:
    scenario = ScenarioConfig().replace(**cfg.scenario) if cfg.scenario else ScenarioConfig()
    if scenario.mode != "fine":
        raise LearnConfigError(f"scenario.mode = {scenario.mode!r}: the learner places PBs, it needs 'fine'")
    return scenario


@dataclass
class Trainer:
    cfg: TrainConfig
    library: PBLibrary
    out: Path
    progress: bool = True
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        env_ss, replay_ss, da_ss, torch_ss = np.random.SeedSequence(cfg.seed).spawn(4)
        self.rng_env = np.random.default_rng(env_ss)
        self.rng_replay = np.random.default_rng(replay_ss)
        self.rng_da = np.random.default_rng(da_ss)
        self.gen = torch.Generator().manual_seed(int(torch_ss.generate_state(1)[0]))
        self.scenario = scenario_of(cfg)
        self.env = CacheEnv(self.library, self.scenario, cfg.episode_slots, cfg.ema_alpha, seed=cfg.seed)
        layout = self.layout = self.env.layout
        self.learner = Maasn(cfg, layout, self.gen)
        self.replay = Replay(cfg.buffer_size, layout.n_nodes, layout.n_pbs, layout.n_models, cfg.esn_reservoir)
        self.synth = Replay(cfg.da_buffer_size, layout.n_nodes, layout.n_pbs, layout.n_models, 0)
        self.da = DynamicsModel(layout, cfg.esn_reservoir, cfg.esn_spectral_radius, cfg.esn_leak, cfg.esn_ridge,
                                tolerance=cfg.da_tolerance, share_max=cfg.da_share_max).init(self.rng_da)
        self.step = 0
        self.stats: dict = {"delay": [], "losses": [], "da": {}}
        self.synthetic_steps = 0
        self.wall = 0.0
        self.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ one real episode
    def _episode(self, stats: dict) -> None:
        cfg, env, da = self.cfg, self.env, self.da
        env.reset(seed=int(self.rng_env.integers(2**31 - 1)))
        x = da.start_episode(env.last)
        for _ in range(cfg.episode_slots):
            p, e, last, users = env.compact()
            obs, _ = observe(self.layout, p, e, last, users)
            actions, priority = self.learner.act(obs, explore=True)
            _, rewards, _, _, info = env.step_joint(actions, priority)
            p2, e2, last2, _ = env.compact()
            reward = float(next(iter(rewards.values())))
            actions = info[env.possible_agents[0]]["effective_actions"]
            x2 = da.observe_slot(x, last, last2, p, p2, users, reward)
            self.replay.add(placement=p[None], ema=e[None], last=last[None], users=users[None],
                            action=actions[None], reward=np.array([reward]), next_placement=p2[None],
                            next_ema=e2[None], next_last=last2[None], next_reservoir=x2[None])
            x = x2
            self.step += 1
            stats["delay"].append(info[env.possible_agents[0]]["mean_delay_s"])
            if cfg.da and self.step % cfg.da_refit_every == 0:
                stats["da"] = dict(da.fit())
            if cfg.da and self.step >= cfg.warmup_steps and self.step % cfg.da_rollout_every == 0 and da.share > 0:
                self._rollout()
            if self.step >= cfg.warmup_steps:
                for _ in range(cfg.updates_per_step):
                    stats["losses"].append(self.learner.update(self._batch()))

    # ------------------------------------------------------------------ data augmentation
    def _rollout(self) -> None:
        """Short model rollouts branched from real next-states (MBPO); length grows 1 -> max."""
        cfg, layout = self.cfg, self.layout
        horizon = 1 + int((cfg.da_rollout_max - 1) * self.step / cfg.total_steps)
        b = self.replay.sample(cfg.da_branches, self.rng_da)
        p, e, last, users, x = (b["next_placement"], b["next_ema"].astype(np.float64),
                                b["next_last"].astype(np.float64), b["users"].astype(np.float64),
                                b["next_reservoir"].astype(np.float64))
        for _ in range(horizon):
            obs, _ = observe(layout, p, e, last, users)
            actions, priority = self.learner.act(obs, explore=True)
            p2 = np.stack([project(layout, actions[k], priority[k]) for k in range(len(actions))])
            last2 = self.da.sample_next(x, last, users, self.rng_da)
            reward = self.da.predict_reward(p2, last2, p, users)
            actions = effective_actions(layout, actions, p2)
            x2, e2 = self.da.advance(x, e, last2, cfg.ema_alpha)
            self.synth.add(placement=p, ema=e, last=last, users=users, action=actions, reward=reward,
                           next_placement=p2, next_ema=e2, next_last=last2)
            self.synthetic_steps += len(actions)
            p, e, last, x = p2, e2, last2, x2

    def _batch(self) -> dict[str, np.ndarray]:
        size = self.cfg.batch_size
        n_syn = int(round(self.da.share * size)) if (self.cfg.da and self.synth.size) else 0
        real = self.replay.sample(size - n_syn, self.rng_replay)
        if not n_syn:
            return real
        syn = self.synth.sample(n_syn, self.rng_replay)
        return {k: np.concatenate([real[k], syn[k]]) for k in real if k != "next_reservoir"}

    # ------------------------------------------------------------------ evaluation
    def policy(self, name: str = "maasn-da") -> LearnedPolicy:
        return LearnedPolicy(self.learner.actor, self.layout.max_degree, self.cfg.ema_alpha, name)

    def evaluate(self) -> np.ndarray:
        return evaluate(self.policy, self.library, self.scenario, self.cfg.eval_seeds, self.cfg.eval_slots)

    # ------------------------------------------------------------------ main loop
    def run(self, stop_after: int | None = None) -> list[dict]:
        """Train to total_steps (or until `stop_after` real steps, then checkpoint and return)."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
        limit = cfg.total_steps if stop_after is None else min(cfg.total_steps, stop_after)
        stats = self.stats  # the open logging window (restored on resume)
        with Progress(TextColumn("[bold]learn[/] {task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total} steps"), TimeRemainingColumn(),
                      disable=not self.progress, transient=True) as bar:
            task = bar.add_task(f"seed {cfg.seed}", total=cfg.total_steps, completed=self.step)
            while self.step < limit:
                t0 = time.perf_counter()
                self._episode(stats)
                self.wall += time.perf_counter() - t0
                bar.update(task, completed=self.step)
                if self.step % cfg.eval_every == 0 or self.step >= cfg.total_steps:
                    row = self._log(stats, writer)
                    bar.update(task, description=f"seed {cfg.seed} eval delay {row['eval_delay_s']:.3f} s")
                    stats = self.stats = {"delay": [], "losses": [], "da": stats["da"]}
                    self.save()
        writer.close()
        self.save()  # also when stopped between evaluations (--stop-after)
        return self.history

    def _log(self, stats: dict, writer) -> dict:
        """Greedy evaluation (not counted in train_wall_s), one CSV row, TensorBoard scalars."""
        delays = self.evaluate()
        losses = stats["losses"]
        row = {
            "step": self.step,
            "synthetic_steps": self.synthetic_steps,
            "eval_delay_s": float(delays.mean()),
            "eval_return": float(-delays.mean() / self.env.d_ref * self.cfg.eval_slots),
            "train_delay_s": float(np.mean(stats["delay"])) if stats["delay"] else float("nan"),
            "critic_loss": float(np.mean([l["critic_loss"] for l in losses])) if losses else float("nan"),
            "actor_loss": float(np.mean([l["actor_loss"] for l in losses])) if losses else float("nan"),
            "synthetic_share": self.da.share if self.cfg.da else 0.0,
            "request_excess_error": stats["da"].get("request_excess", float("nan")),
            "reward_nrmse": stats["da"].get("reward_nrmse", float("nan")),
            "train_wall_s": self.wall,
        }
        self.history.append(row)
        for k, v in row.items():
            if k != "step" and np.isfinite(v):
                writer.add_scalar(k, v, self.step)
        writer.flush()
        with open(self.out / "metrics.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            w.writeheader()
            w.writerows(self.history)
        return row

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        path = self.out / CHECKPOINT
        state = {
            "config": self.cfg.to_dict(),
            "max_degree": self.layout.max_degree,
            "layout_fingerprint": self._fingerprint(),
            "learner": self.learner.state_dict(),
            "replay": self.replay.state_dict(),
            "synth": self.synth.state_dict(),
            "da": self.da.state_dict(),
            "rng": {
                "env": self.rng_env.bit_generator.state, "replay": self.rng_replay.bit_generator.state,
                "da": self.rng_da.bit_generator.state, "gen": self.gen.get_state(),
                "torch": torch.get_rng_state(), "env_np": self.env._np_random.bit_generator.state,
            },
            "step": self.step, "synthetic_steps": self.synthetic_steps, "wall": self.wall,
            "history": self.history, "stats": self.stats,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=1))
        return path

    def _fingerprint(self) -> list:
        return [int(self.layout.pb_bytes.sum()), int(self.layout.n_pbs), int(self.layout.n_models),
                int(self.layout.capacity.sum())]

    @classmethod
    def resume(cls, out: Path, library: PBLibrary, progress: bool = True) -> "Trainer":
        path = Path(out) / CHECKPOINT
        if not path.exists():
            raise CheckpointError(f"{path}: no checkpoint to resume from")
        try:
            state = torch.load(path, weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            raise CheckpointError(f"{path}: cannot load ({exc})") from None
        cfg = TrainConfig.from_dict(state["config"], where=str(path))
        trainer = cls(cfg, library, Path(out), progress)
        if state["layout_fingerprint"] != trainer._fingerprint():
            raise CheckpointError(f"{path}: the library or scenario differs from the checkpoint's run")
        trainer.learner.load_state_dict(state["learner"])
        trainer.replay.load_state_dict(state["replay"])
        trainer.synth.load_state_dict(state["synth"])
        trainer.da.load_state_dict(state["da"])
        rng = state["rng"]
        trainer.rng_env.bit_generator.state = rng["env"]
        trainer.rng_replay.bit_generator.state = rng["replay"]
        trainer.rng_da.bit_generator.state = rng["da"]
        trainer.env._np_random.bit_generator.state = rng["env_np"]
        trainer.gen.set_state(rng["gen"])
        torch.set_rng_state(rng["torch"])
        trainer.step, trainer.synthetic_steps = state["step"], state["synthetic_steps"]
        trainer.wall, trainer.history, trainer.stats = state["wall"], state["history"], state["stats"]
        return trainer
