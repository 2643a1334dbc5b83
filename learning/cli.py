"""`pbkit learn ...`: train, evaluate and report the MAASN-DA learner."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from learning.config import LearnConfigError

if TYPE_CHECKING:  # numpy and the library loader are imported when a command runs, not at start-up
    from pbkit.library import PBLibrary


def library_arg(value: str) -> PBLibrary:
    """A library JSON path, or "synthetic" for the seeded synthetic test library."""
    import numpy as np

    from pbkit.library import load_library, synthetic_library

    if value == "synthetic":
        return synthetic_library(np.random.default_rng(0))
    return load_library(value)


def policy_table(rows: dict[str, dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("policy", "mean delay (s)", "95 % CI"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["mean_delay_s"]):
        table.add_row(name, f"{r['mean_delay_s']:.3f}", f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
    Console().print(table)


def register(app: typer.Typer) -> None:
    learn = typer.Typer(help="Multi-agent PB cache learner (MAASN-DA): train, eval, report.",
                        no_args_is_help=True)

    @learn.command("train")
    def train(
        library: str = typer.Option(..., "--library", help="PB library JSON (or 'synthetic')."),
        out: Path = typer.Option(..., "--out", help="Run directory (checkpoint, metrics.csv, tb/)."),
        config: str = typer.Option(None, "--config", help="YAML config, or 'quick' / 'full'."),
        overrides: list[str] = typer.Option([], "--set", help="key=value override (repeatable); "
                                                               "scenario.<field>=value for the scenario."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
        stop_after: int = typer.Option(None, "--stop-after", help="Stop (and checkpoint) after this many real steps."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Train one learner; writes OUT/checkpoint.pt, OUT/metrics.csv and TensorBoard logs."""
        from learning.config import load_config
        from learning.trainer import Trainer

        lib = library_arg(library)
        if resume:
            trainer = Trainer.resume(out, lib, progress)
        else:
            trainer = Trainer(load_config(config).with_overrides(overrides), lib, out, progress)
        history = trainer.run(stop_after=stop_after)
        if history:
            last = history[-1]
            typer.echo(f"step {last['step']}: eval mean delay {last['eval_delay_s']:.4f} s "
                       f"(training {last['train_wall_s']:.0f} s); checkpoint {out / 'checkpoint.pt'}")

    @learn.command("eval")
    def eval_(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Run directory or checkpoint.pt."),
        library: str = typer.Option(..., "--library"),
        seeds: str = typer.Option("2000,2001,2002,2003,2004", "--seeds", help="Comma-separated scenario seeds."),
        slots: int = typer.Option(20, "--slots"),
        policies: str = typer.Option("random,popular,lfu,greedy", "--policies",
                                     help="Heuristics to run beside the checkpoint."),
        overrides: list[str] = typer.Option([], "--set", help="scenario.<field>=value overrides."),
    ) -> None:
        """Greedy evaluation of a checkpoint beside delivery heuristics on the same seeds."""
        import torch

        from delivery.policies import make_policy
        from learning.config import TrainConfig
        from learning.evaluate import bootstrap_ci, evaluate
        from learning.policy import load_policy
        from learning.trainer import scenario_of

        lib = library_arg(library)
        path = checkpoint / "checkpoint.pt" if checkpoint.is_dir() else checkpoint
        cfg = TrainConfig.from_dict(torch.load(path, weights_only=False)["config"], where=str(path))
        scenario = scenario_of(cfg.with_overrides(overrides))
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        rng = np.random.default_rng(0)
        rows = {}
        makers = {"maasn": lambda: load_policy(path, "maasn")}
        makers |= {p: (lambda p=p: make_policy(p)) for p in policies.split(",") if p.strip()}
        for name, make in makers.items():
            values = evaluate(make, lib, scenario, seed_list, slots)
            lo, hi = bootstrap_ci(values, rng)
            rows[name] = {"mean_delay_s": float(values.mean()), "ci95": [lo, hi]}
        policy_table(rows, f"{len(seed_list)} seeds x {slots} slots")

    @learn.command("report")
    def report(
        library: str = typer.Option(..., "--library"),
        out: Path = typer.Option(..., "--out"),
        quick: bool = typer.Option(False, "--quick", help="Short training and sweeps (minutes)."),
        config: str = typer.Option(None, "--config", help="Training config instead of quick/full."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        train_seeds: str = typer.Option(
            None, "--train-seeds", help="Comma-separated training seeds per learner (default: 0)."
        ),
    ) -> None:
        """The evaluation protocol: writes OUT/results.json and plots."""
        import dataclasses

        from learning.report import FULL, QUICK, run_report

        plan = QUICK if quick else FULL
        if config:
            plan = dataclasses.replace(plan, config=config)
        if train_seeds:
            try:
                seeds = tuple(int(s) for s in train_seeds.split(","))
            except ValueError:
                raise LearnConfigError(f"--train-seeds {train_seeds!r}: not a comma-separated list of integers") from None
            plan = dataclasses.replace(plan, train_seeds=seeds)
        results = run_report(library_arg(library), out, plan, log=typer.echo, progress=progress)
        policy_table(results["policies"], f"mean delay, {len(plan.eval_seeds)} seeds")
        typer.echo(f"wrote {out / 'results.json'}")

    app.add_typer(learn, name="learn")
