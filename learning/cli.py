"""`pbkit learn ...`: train, evaluate and report the MAASN-DA learner."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from delivery.interval import Interval
from learning.config import HEURISTICS, TEST_SEEDS, VARIANTS, LearnConfigError
from pbkit.common.schema import versioned
from pbkit.common.seeds import SEEDS_GRAMMAR, format_seeds

if TYPE_CHECKING:  # numpy and the library loader are imported when a command runs, not at start-up
    from pbkit.library import PBLibrary


def library_arg(value: str) -> PBLibrary:
    """A library JSON path, "synthetic" (the seeded synthetic library) or the name of a shipped
    library such as "llama-2-lora", as every `--library` option (`pbkit.library.resolve_library`).
    Raises LibraryError naming `value`."""
    from pbkit.library import resolve_library

    return resolve_library(value)


def parse_seeds(text: str, option: str) -> list[int]:
    """Seeds in the one `--seeds` grammar (pbkit.common.seeds): `10`, `0-9`, `0,3,5`; raises
    SeedError naming the option."""
    from pbkit.common.seeds import parse_seeds as parse

    return parse(text, option)


def _is_training_config(source: str) -> bool:
    from learning.config import TrainConfig

    try:
        TrainConfig.build(source)
    except LearnConfigError:
        return False
    return source not in ("quick", "full")  # names of both a plan and a training config


def policy_table(rows: dict[str, dict], title: str) -> None:
    from rich.table import Table

    from pbkit.common.progress import console  # no wrapping at 80 columns in logs and pipes

    table = Table(title=title)
    for col in ("policy", "mean delay (s)", "95 % CI (s)"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["mean_delay_s"]):
        table.add_row(name, f"{r['mean_delay_s']:.3f}", Interval.from_json(r["interval"], name).format_range(".3f"))
    console().print(table)


def paired_line(name: str, paired: dict, unit: str) -> str:
    """One line of a paired difference (`delivery.experiment.paired_difference` plus `vs`)."""
    diff = Interval.from_json(paired, f"{name} paired")
    return (
        f"{name} - {paired['vs']}: {diff.mean:+.4f} {unit} (95 % CI {diff.format_range('+.4f')}), "
        f"ratio {paired['ratio']:.3f}"
    )


def register(app: typer.Typer) -> None:
    learn = typer.Typer(help="Multi-agent PB cache learner (MAASN-DA): train, eval, report.", no_args_is_help=True)

    @learn.command("train")
    def train(
        library: str = typer.Option(..., "--library", help="PB library JSON (or 'synthetic')."),
        out: Path = typer.Option(..., "--out", help="Run directory (policy, checkpoint, metrics.csv, tb/)."),
        config: str = typer.Option(None, "--config", help="Training config: a YAML/TOML file, or 'quick' / 'full'."),
        scenario: str = typer.Option(
            None,
            "--scenario",
            help="Training scenario: a file or bundled name (delivery/scenarios/); its keys override the "
            "config's scenario, and --set scenario.<field>=value overrides both.",
        ),
        overrides: list[str] = typer.Option(
            [], "--set", help="key=value override (repeatable); scenario.<field>=value for the scenario."
        ),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
        stop_after: int = typer.Option(None, "--stop-after", help="Stop (and checkpoint) after this many real steps."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Train one learner; writes OUT/policy.*, OUT/checkpoint.*, OUT/metrics.csv and TensorBoard logs."""
        from learning.config import TrainConfig
        from learning.trainer import Trainer

        # bad settings fail before the library loads
        cfg = None if resume else TrainConfig.build(config, overrides, scenario=scenario)
        lib = library_arg(library)
        if resume:
            trainer = Trainer.resume(out, lib, progress)
        else:
            trainer = Trainer(cfg, lib, out, progress)
        history = trainer.run(stop_after=stop_after)
        if history:
            last = history[-1]
            typer.echo(
                f"step {last['step']}: validation mean delay {last['eval_delay_s']:.4f} s, best "
                f"{trainer.best:.4f} s (training {last['train_wall_s']:.0f} s); policy in {out}"
            )

    @learn.command("eval")
    def eval_(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Run directory of `pbkit learn train`."),
        library: str = typer.Option(..., "--library"),
        seeds: str = typer.Option(
            format_seeds(list(TEST_SEEDS)),
            "--seeds",
            help=f"Scenario seeds (as `pbkit sim run --seed`): {SEEDS_GRAMMAR}.",
        ),
        slots: int = typer.Option(20, "--slots", min=1),
        policies: str = typer.Option(
            ",".join(HEURISTICS), "--policies", help="Heuristics to run beside the checkpoint."
        ),
        name: str = typer.Option("maasn-da", "--name", help="Name of the learner in the output."),
        scenario: str = typer.Option(
            None,
            "--scenario",
            help="Scenario: a YAML/TOML file, or a bundled name such as 'default' or 'small' (delivery/scenarios/).",
        ),
        legacy_config: str = typer.Option(None, "--config", hidden=True, help="Deprecated: use --scenario."),
        overrides: list[str] = typer.Option([], "--set", help="Scenario key=value overrides, as `pbkit sim run`."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """The checkpoint's policy beside heuristics on the same seeded scenarios as `pbkit sim run`;
        paired differences to the best heuristic with 95 % intervals."""
        import json

        from delivery.cli import scenario_label, scenario_source
        from delivery.config import ScenarioConfig
        from delivery.policies import make_policy
        from learning.evaluate import evaluate_policies, summarise
        from learning.policy import load_policy

        seed_list = parse_seeds(seeds, "--seeds")
        source = scenario_source(scenario, legacy_config)
        lib = library_arg(library)
        cfg = ScenarioConfig.build(source, [o.removeprefix("scenario.") for o in overrides])
        heuristics = [p.strip() for p in policies.split(",") if p.strip()]
        for p in heuristics:
            make_policy(p)  # a bad name fails before any work
        load_policy(checkpoint, name)  # a bad checkpoint fails before any work
        makers = {p: None for p in heuristics} | {name: lambda: load_policy(checkpoint, name)}
        values = evaluate_policies(cfg, lib, makers, seed_list, slots)
        result = versioned("learn-eval", summarise(values, heuristics, [name]) | {"seeds": seed_list, "slots": slots})
        if as_json:
            typer.echo(json.dumps(result, indent=1))
            return
        policy_table(
            result["policies"],
            f"library {library}, {scenario_label(source, overrides)}: {len(seed_list)} seeds x {slots} slots "
            "(95 % t-intervals)",
        )
        for learner, p in result.get("paired", {}).items():
            typer.echo(paired_line(learner, p, "s per seed"))

    @learn.command("report")
    def report(
        library: str = typer.Option(..., "--library"),
        out: Path = typer.Option(..., "--out"),
        config: str = typer.Option(
            None, "--config", help="Report plan: a YAML/TOML file, or 'quick' / 'full' (learning/plans/report/)."
        ),
        quick: bool = typer.Option(False, "--quick", help="Alias of --config quick (minutes)."),
        scenario: str = typer.Option(
            None, "--scenario", help="Evaluation scenario: a file or bundled name; its keys override the plan's."
        ),
        overrides: list[str] = typer.Option(
            [], "--set", help="Plan key=value override (repeatable); scenario.<field>=value for the scenario."
        ),
        train_config: str = typer.Option(None, "--train-config", help="= --set train_config=... (bundled or file)."),
        train_seeds: str = typer.Option(None, "--train-seeds", help=f"= --set train_seeds=... ({SEEDS_GRAMMAR})."),
        eval_seeds: str = typer.Option(None, "--eval-seeds", help=f"= --set eval_seeds=... ({SEEDS_GRAMMAR})."),
        slots: str = typer.Option(None, "--slots", help="= --set eval_slots=... (slots per evaluation run)."),
        variants: str = typer.Option(None, "--variants", help=f"= --set variants=... (of {', '.join(VARIANTS)})."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        workers: int = typer.Option(
            None,
            "--workers",
            min=1,
            help="Run the training and evaluation runs on Ray with this many in parallel "
            "(default: one by one in this process).",
        ),
        address: str = typer.Option(None, "--address", help="Run them on the Ray cluster at this address."),
    ) -> None:
        """The evaluation protocol: writes OUT/results.json and plots. Every training and evaluation
        run is recorded in OUT as it finishes; rerunning the command reuses them."""
        from learning.config import settings_from_options
        from learning.report import ReportPlan, run_report

        shortcuts = {
            "--train-config": ("train_config", train_config),
            "--train-seeds": ("train_seeds", train_seeds),
            "--eval-seeds": ("eval_seeds", eval_seeds),
            "--slots": ("eval_slots", slots),
            "--variants": ("variants", variants),
        }
        plan = settings_from_options(
            ReportPlan,
            quick=quick,
            config=config,
            scenario=scenario,
            overrides=overrides,
            shortcuts=shortcuts,
            old_meaning=(_is_training_config, "a training config, not a report plan: use --train-config"),
        )
        results = run_report(
            library_arg(library), out, plan, log=typer.echo, progress=progress, workers=workers, address=address
        )
        policy_table(
            results["policies"],
            f"library {library}: mean delay, {len(plan.eval_seeds)} seeds x {plan.eval_slots} slots",
        )
        for name, p in results["paired"].items():
            typer.echo(paired_line(name, p, "s"))
        typer.echo(f"wrote {out / 'results.json'}")

    app.add_typer(learn, name="learn")
