"""`pbkit plan`: exact PB plans of large architectures as a PB library (docs/plans.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from pbkit.cli.zoo import check_granularity
from pbkit.common.sizes import format_size, size_option
from pbkit.library.grouping import GRANULARITIES


def plan_command(
    arch: str = typer.Option(None, "--arch", help="transformers config.json, or a shipped config name (see --list)."),
    spec: Path = typer.Option(
        None, "--spec", help="Plan spec (YAML/JSON): families with fine-tunes and LoRA adapters."
    ),
    hub: str = typer.Option(None, "--hub", help="Hub repo id: plan from its safetensors headers (needs the network)."),
    revision: str = typer.Option(None, "--revision", help="Hub revision for --hub."),
    dtype: str = typer.Option(None, "--dtype", help="Float dtype of the base weights: float32, float16, bfloat16."),
    architecture: str = typer.Option(
        None, "--architecture", help="Model class instead of the config's `architectures`."
    ),
    name: str = typer.Option(
        None, "--name", help="Model name for --arch (default: the file's stem; for config.json, the architecture)."
    ),
    granularity: str = typer.Option("tensor", "--granularity", help=f"PB granularity: {', '.join(GRANULARITIES)}."),
    max_bytes: str = size_option(None, "--max-bytes", help="Largest PB, needed by --granularity fixed"),
    out: Path = typer.Option(None, "--out", help="Write the PB library JSON here."),
    list_configs: bool = typer.Option(False, "--list", help="List the shipped configs and exit."),
) -> None:
    """Plan PBs of a model (or a spec's families) on the meta device and write a PB library."""
    from pbkit.library.plan import (
        PlanError,
        plan_base,
        plan_from_hub,
        plan_spec,
        shipped_configs,
    )  # numpy, torch: when run

    if list_configs:
        for cfg in shipped_configs():
            typer.echo(cfg)
        return
    chosen = [flag for flag, value in (("--arch", arch), ("--spec", spec), ("--hub", hub)) if value]
    if len(chosen) != 1:
        raise PlanError("give exactly one of --arch, --spec or --hub")
    if out is None:
        raise PlanError("--out is required (the PB library JSON to write)")
    check_granularity(granularity, max_bytes)  # before the (slower) planning
    if arch:
        plan = plan_base(arch, dtype=dtype, name=name, architecture=architecture)
    elif spec:
        if architecture or name:
            raise PlanError("--architecture and --name apply to --arch; a spec names its own")
        plan = plan_spec(spec, dtype=dtype)
    else:
        if dtype or architecture:
            raise PlanError("--dtype and --architecture do not apply to --hub (headers fix them)")
        plan = plan_from_hub(hub, revision)
    library = plan.to_library(granularity, max_bytes)
    library.save(out)
    share = library.sharing()
    typer.echo(
        f"{out}: {share['models']} models, {share['pbs']} PBs ({granularity}), "
        f"logical {format_size(share['logical_bytes'])}, unique {format_size(share['unique_bytes'])}, "
        f"dedup {share['dedup_ratio']:.2f}x"
    )
    for m in plan.models:
        typer.echo(
            f"  {m.name:40s} {m.kind:17s} {m.num_parameters / 1e6:>12,.1f} M params {format_size(m.nbytes):>12} own"
        )


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
