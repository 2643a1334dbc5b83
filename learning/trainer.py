"""The training loop: config-driven, one master seed, checkpoints that resume bit-exactly.

Order of a run: RL episodes from a cold start (random actor weights): `warmup_steps` real slots
of acting before the first update, critic-only updates for `actor_delay` slots after that, then
actor updates too; every `eval_every` slots the actor is validated on `val_seeds` (disjoint from
the test seeds) and the best one so far is written as the run's policy. Transitions enter the
replay as `n_step` returns (`replay.NStep`); the reward is the paired difference to a reference
policy replayed on the same slot (`reward_baseline`, `learning.baseline`), which the agents never
observe. The "maasn-warm" ablation (`bc_episodes` > 0) first runs that many real episodes placed
by the greedy heuristic and clones them once; MAASN-DA itself never sees a heuristic's placement.

Seeding: SeedSequence(seed) spawns independent streams for the environment (episode seeds),
replay sampling, data augmentation and a torch generator for Gumbel noise; torch's global seed
is set from the same master seed (network initialisation). A checkpoint is written at every
validation (always at an episode boundary, so no simulator state is in flight) and carries
every generator's state, the replay buffers, the forecaster and the optimisers (see
`learning.checkpoint`: safetensors + JSON, never a pickle).
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from delivery.config import ScenarioConfig
from delivery.policies import GreedyPolicy
from learning.augmentation import PopularityForecaster
from learning.checkpoint import RUN, load_state, save_state
from learning.config import LearnConfigError, TrainConfig
from learning.env import CacheEnv
from learning.errors import CheckpointError
from learning.evaluate import evaluate_policies
from learning.features import CACHE, SNAPSHOT_KEYS, observe
from learning.maasn import Maasn
from learning.policy import LearnedPolicy, save_policy
from learning.replay import NStep, Replay
from pbkit.common.fs import atomic_write_json
from pbkit.library import PBLibrary


def scenario_of(cfg: TrainConfig) -> ScenarioConfig:
    """The training scenario: the defaults with the config's overrides. Raises ConfigError or
    LearnConfigError (the learner needs fine-grained placement)."""
    scenario = ScenarioConfig.from_dict(ScenarioConfig().to_dict() | dict(cfg.scenario), where="scenario")
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
        self.env = CacheEnv(
            self.library,
            self.scenario,
            cfg.episode_slots,
            cfg.ema_alpha,
            seed=cfg.seed,
            keep_bias=cfg.keep_bias,
            baseline=cfg.reward_baseline or None,
        )
        layout = self.layout = self.env.layout
        self.learner = Maasn(cfg, layout, self.gen)
        self.env.ask_bonus = self.learner.ask_bonus  # the learner's scores decide how asks count
        self.replay = Replay(cfg.buffer_size, layout.n_nodes, layout.n_pbs, layout.n_models)
        self.synth = Replay(cfg.da_buffer_size, layout.n_nodes, layout.n_pbs, layout.n_models)
        self.da = PopularityForecaster(
            layout.n_nodes,
            layout.n_models,
            cfg.esn_reservoir,
            cfg.esn_spectral_radius,
            cfg.esn_leak,
            cfg.esn_ridge,
            cfg.da_share_max,
            cfg.da_skill_full,
        ).init(self.rng_da)
        self.step = 0
        self.stats: dict = {"delay": [], "losses": [], "da": {}}
        self.synthetic_steps = 0
        self.wall = 0.0
        self.best = float("inf")
        self.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ one real episode
    def _episode(self, stats: dict, greedy: bool = False) -> None:
        """One real episode; `greedy`: placed by the greedy heuristic (warm-start data)."""
        cfg, env, da = self.cfg, self.env, self.da
        env.reset(seed=int(self.rng_env.integers(2**31 - 1)))
        snap = env.snapshot()
        x = da.start_episode(snap)
        self._forecast_into(x, snap, env)
        heuristic = GreedyPolicy()
        nstep = NStep(cfg.n_step, cfg.gamma)
        for _ in range(cfg.episode_slots):
            popularity = env.sim.requests.popularity()  # the slot's truth: measures the forecast only
            if greedy:
                _, rewards, _, _, info = env.step_placement(heuristic.place(env.view(), self.rng_env))
            else:
                obs, _ = observe(self.layout, snap)
                actions, scores = self.learner.act(obs, explore=True)
                _, rewards, _, _, info = env.step_joint(actions, scores)
            info = info[env.possible_agents[0]]
            snap2 = env.snapshot()
            reward = float(next(iter(rewards.values())))
            x = da.observe(x, snap, snap2, popularity)
            self._forecast_into(x, snap2, env)
            nstep.push(snap, info["effective_actions"], reward, snap2, self.replay)
            self.step += 1
            stats["delay"].append(info["mean_delay_s"])
            if np.isfinite(info["reference_delay_s"]):
                self.stats.setdefault("reference", []).append(info["reference_delay_s"])
                del self.stats["reference"][:-1000]
            if cfg.da and self.step % cfg.da_refit_every == 0:
                stats["da"] = dict(da.fit())
            if greedy:
                snap = snap2
                continue
            if cfg.da and self.step % cfg.da_rollout_every == 0 and da.share > 0:
                self._synthetic(x)
            if self.step >= cfg.warmup_steps and self.step % cfg.update_every == 0:
                progress = self.step / cfg.total_steps
                train_actor = self.step >= self._bc_steps() + cfg.actor_delay
                for _ in range(cfg.updates_per_step):
                    stats["losses"].append(self.learner.update(self._batch(), progress, train_actor))
            snap = snap2
        nstep.flush(self.replay)

    def _bc_steps(self) -> int:
        return self.cfg.bc_episodes * self.cfg.episode_slots

    # ------------------------------------------------------------------ warm start
    def _warm_start(self, stats: dict) -> None:
        """The "maasn-warm" ablation: greedy episodes into the replay, then behaviour cloning of
        the actor on the placements greedy made (the replay's effective "cache" actions). The
        target is used here only: it is no input of any observation."""
        for _ in range(self.cfg.bc_episodes):
            self._episode(stats, greedy=True)
        if not self.replay.size:
            return
        data = {k: v[: self.replay.size] for k, v in self.replay.data.items()}
        obs, _ = observe(self.layout, {k: data[k] for k in SNAPSHOT_KEYS})
        target = data["action"] == CACHE
        stats["bc_loss"] = self.learner.imitate(obs, target, self.cfg.bc_epochs, 8, self.rng_replay)[-1]

    # ------------------------------------------------------------------ data augmentation
    def _synthetic(self, x: np.ndarray) -> None:
        """One branch of `da_rollout_len` synthetic slots: the real simulator from the current
        state with fresh channels, requests drawn from the ESN's popularity forecast."""
        twin = self.env.branch(int(self.rng_da.integers(2**31 - 1)))
        x = x.copy()
        home = twin.view().user_home
        snap = twin.snapshot()
        nstep = NStep(self.cfg.n_step, self.cfg.gamma)
        for _ in range(self.cfg.da_rollout_len):
            requests = self.da.sample_requests(self.da.forecast(x, snap), home, self.rng_da)
            obs, _ = observe(self.layout, snap)
            actions, scores = self.learner.act(obs, explore=True)
            _, _, _, _, info = twin.step_joint(actions, scores, requests=requests)
            info = info[twin.possible_agents[0]]
            snap2 = twin.snapshot()
            # no replayed reference on synthetic slots: the baseline is the real slots' mean paired
            # reference (a constant, so it shifts Q only and keeps real and synthetic rewards on one scale)
            reward = -(info["mean_delay_s"] - self._reference_level()) / twin.d_ref
            x = self.da.advance(x, snap2)
            self._forecast_into(x, snap2, twin)
            nstep.push(snap, info["effective_actions"], reward, snap2, self.synth)
            self.synthetic_steps += 1
            snap = snap2
        nstep.flush(self.synth)

    def _forecast_into(self, x: np.ndarray, snap: dict, env: CacheEnv) -> None:
        """The ESN's forecast of the next slot's request shares as the snapshot's "forecast"
        feature (and the environment's, which branches start from), once the ESN is fitted;
        until then the feature is the moving average. A forecast, never a placement."""
        if self.cfg.forecast_input and self.da.esn.fitted:
            snap["forecast"] = self.da.forecast(x, snap)
            env.snap["forecast"] = snap["forecast"].copy()

    def _reference_level(self) -> float:
        """Mean reference delay of the real slots so far (0 without a reward baseline)."""
        refs = self.stats.get("reference", [])
        return float(np.mean(refs)) if refs else 0.0

    def _batch(self) -> dict[str, np.ndarray]:
        size = self.cfg.batch_size
        n_syn = int(round(self.da.share * size)) if (self.cfg.da and self.synth.size) else 0
        real = self.replay.sample(size - n_syn, self.rng_replay)
        if not n_syn:
            return real
        syn = self.synth.sample(n_syn, self.rng_replay)
        return {k: np.concatenate([real[k], syn[k]]) for k in real}

    # ------------------------------------------------------------------ validation
    def _policy_forecaster(self) -> dict:
        """What the policy needs to compute the forecast feature itself: the ESN's weights."""
        return {"esn": self.da.esn.state_dict()} if self.cfg.forecast_input and self.da.esn.fitted else {}

    def policy(self, name: str = "maasn-da") -> LearnedPolicy:
        return LearnedPolicy(
            self.learner.actor.state_dict(),
            self.cfg,
            self.layout.max_degree,
            name,
            esn=self._policy_forecaster().get("esn"),
        )

    def validate(self) -> np.ndarray:
        """Per-seed mean delay of the current greedy actor on the validation seeds."""
        return evaluate_policies(
            self.scenario, self.library, {"maasn-val": self.policy}, list(self.cfg.val_seeds), self.cfg.eval_slots
        )["maasn-val"]

    # ------------------------------------------------------------------ main loop
    def run(self, stop_after: int | None = None, log: Callable[[str], None] | None = None) -> list[dict]:
        """Train to total_steps (or until `stop_after` real steps, then checkpoint and return).

        Progress: a rich bar on a terminal; plain lines through `log` (default: stderr) when
        `progress` is on and the output is not a terminal."""
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from torch.utils.tensorboard import SummaryWriter

        from pbkit.common.progress import Progress  # plain "i/n (x %), elapsed" lines every few s when not a terminal

        cfg = self.cfg
        lines = self.progress and not sys.stderr.isatty()
        log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
        limit = cfg.total_steps if stop_after is None else min(cfg.total_steps, stop_after)
        stats = self.stats  # the open logging window (restored on resume)
        with Progress(
            TextColumn("[bold]learn[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TimeRemainingColumn(),
            disable=not self.progress,
            transient=True,
        ) as bar:
            task = bar.add_task(f"seed {cfg.seed}", total=cfg.total_steps, completed=self.step)
            while self.step < limit:
                t0 = time.perf_counter()
                warm = self.step == 0 and cfg.bc_episodes > 0  # the "maasn-warm" ablation only
                if warm:
                    self._warm_start(stats)
                else:
                    self._episode(stats)
                self.wall += time.perf_counter() - t0
                bar.update(task, completed=self.step)
                if warm or self.step % cfg.eval_every == 0 or self.step >= cfg.total_steps:
                    row = self._log(stats, writer)
                    text = (
                        f"seed {cfg.seed} step {self.step}/{cfg.total_steps}: validation delay "
                        f"{row['eval_delay_s']:.3f} s (best {self.best:.3f} s), {self.wall:.0f} s"
                    )
                    if lines:  # the plain progress lines keep "seed S" (a step count there would go stale)
                        log(f"learn {text}")
                    else:  # the bar counts steps itself; its label says which step the delay is from
                        bar.update(
                            task,
                            description=f"seed {cfg.seed}, validation at step {self.step}: "
                            f"{row['eval_delay_s']:.3f} s (best {self.best:.3f} s)",
                        )
                    stats = self.stats = {
                        "delay": [],
                        "losses": [],
                        "da": stats["da"],
                        "reference": stats.get("reference", []),
                    }
                    self.save()
        writer.close()
        self.save()  # also when stopped between evaluations (--stop-after)
        return self.history

    def _log(self, stats: dict, writer) -> dict:
        """Validation (not counted in train_wall_s), best policy, one CSV row, TensorBoard scalars."""
        delays = self.validate()
        losses = stats["losses"]
        value = float(delays.mean())
        if value < self.best:
            self.best = value
            save_policy(
                self.out,
                self.learner.actor,
                self.cfg,
                self.layout.max_degree,
                {"step": self.step, "validation_delay_s": value} | self._policy_forecaster(),
            )
        row = {
            "step": self.step,
            "synthetic_steps": self.synthetic_steps,
            "eval_delay_s": value,
            "eval_return": float(-value / self.env.d_ref * self.cfg.eval_slots),
            "best_delay_s": self.best,
            "train_delay_s": float(np.mean(stats["delay"])) if stats["delay"] else float("nan"),
            "critic_loss": float(np.mean([l["critic_loss"] for l in losses])) if losses else float("nan"),
            "actor_loss": float(np.mean([l["actor_loss"] for l in losses])) if losses else float("nan"),
            "bc_loss": float(stats.get("bc_loss", float("nan"))),
            "synthetic_share": self.da.share if self.cfg.da else 0.0,
            "forecast_skill": stats["da"].get("forecast_skill", float("nan")),
            "forecast_mse": stats["da"].get("forecast_mse", float("nan")),
            "ema_mse": stats["da"].get("ema_mse", float("nan")),
            "cumulative_mse": stats["da"].get("cumulative_mse", float("nan")),
            "forecast_skill_true": stats["da"].get("forecast_skill_true", float("nan")),
            "forecast_mse_true": stats["da"].get("forecast_mse_true", float("nan")),
            "ema_mse_true": stats["da"].get("ema_mse_true", float("nan")),
            "cumulative_mse_true": stats["da"].get("cumulative_mse_true", float("nan")),
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
        state = {
            "config": self.cfg.to_dict(),
            "max_degree": self.layout.max_degree,
            "layout_fingerprint": self._fingerprint(),
            "learner": self.learner.state_dict(),
            "replay": self.replay.state_dict(),
            "synth": self.synth.state_dict(),
            "da": self.da.state_dict(),
            "rng": {
                "env": self.rng_env.bit_generator.state,
                "replay": self.rng_replay.bit_generator.state,
                "da": self.rng_da.bit_generator.state,
                "gen": self.gen.get_state().tolist(),
                "torch": torch.get_rng_state().tolist(),
                "env_np": self.env.rng_state(),
            },
            "step": self.step,
            "synthetic_steps": self.synthetic_steps,
            "wall": self.wall,
            "best": self.best,
            "history": self.history,
            "stats": self.stats,
        }
        save_state(self.out, state, RUN)
        atomic_write_json(self.out / "config.json", self.cfg.to_dict(), indent=1)
        return self.out

    def _fingerprint(self) -> list:
        return [
            int(self.layout.pb_bytes.sum()),
            int(self.layout.n_pbs),
            int(self.layout.n_models),
            int(self.layout.capacity.sum()),
        ]

    @classmethod
    def resume(cls, out: Path, library: PBLibrary, progress: bool = True) -> "Trainer":
        """Continue the run in `out`. Raises CheckpointError (missing, unreadable, other library)."""
        state = load_state(out, RUN)
        try:
            cfg = TrainConfig.from_dict(state["config"], where=str(out))
            trainer = cls(cfg, library, Path(out), progress)
            if state["layout_fingerprint"] != trainer._fingerprint():
                raise CheckpointError(f"{out}: the library or scenario differs from the checkpoint's run")
            trainer.learner.load_state_dict(state["learner"])
            trainer.replay.load_state_dict(state["replay"])
            trainer.synth.load_state_dict(state["synth"])
            trainer.da.load_state_dict(state["da"])
            rng = state["rng"]
            trainer.rng_env.bit_generator.state = rng["env"]
            trainer.rng_replay.bit_generator.state = rng["replay"]
            trainer.rng_da.bit_generator.state = rng["da"]
            trainer.env.set_rng_state(rng["env_np"])
            trainer.gen.set_state(torch.tensor(rng["gen"], dtype=torch.uint8))
            torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
            trainer.step, trainer.synthetic_steps = int(state["step"]), int(state["synthetic_steps"])
            trainer.wall, trainer.best = float(state["wall"]), float(state["best"])
            trainer.history, trainer.stats = state["history"], state["stats"]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{out}: not a training checkpoint of this version ({exc})") from None
        return trainer
