"""Sweeps: grid x policies x seeds, one `run_policy` per cell, on the engine (delivery/engine.py).

Every cell is exactly `run_policy(config, library, policy, slots, seed)` with the config that
`pbkit sim run --config C --set ... --set key=value` builds for that grid point, so a row of
results.csv equals what `pbkit sim run` prints for the same settings and seed.

Files in the output directory: `cells.jsonl` (the engine's record of finished cells),
`results.csv` (one row per finished cell, grid order), `summary.json` (per grid point and
policy: means with 95 % t-intervals over the seeds, and `"computed"`: cells computed by this
run). Both tables are rewritten atomically after every finished cell.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from delivery.config import ScenarioConfig
from delivery.engine import Cell, CellResult, RunReport, run_cells
from delivery.errors import ConfigError
from delivery.experiment import run_policy
from delivery.interval import Interval
from pbkit.common.fs import atomic_write_text
from pbkit.common.schema import SCHEMA_KEY, schema_id
from pbkit.library import PBLibrary

RESULT_COLUMNS = ("mean_delay_s", "mode", "hit_ratio_local", "hit_ratio_edge", "delay_lower_bound_s", "wall_s")
SUMMARY_KEYS = ("mean_delay_s", "hit_ratio_local", "hit_ratio_edge", "delay_lower_bound_s")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`--grid key=v1,v2,...` options as {key: [values]}, values read as YAML scalars like
    `--set`. Raises ConfigError on a malformed item or a key given twice."""
    import yaml

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ConfigError(f"--grid {item!r} is not key=value1,value2,...")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice")
        values = text.split(",")
        empty = [i + 1 for i, v in enumerate(values) if not v.strip()]
        if empty:
            raise ConfigError(f"--grid {item!r}: value {empty[0]} of {len(values)} is empty")
        try:
            grid[key] = [yaml.safe_load(v) for v in values]
        except yaml.YAMLError:
            raise ConfigError(f"--grid {item!r}: cannot parse a value") from None
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, first key slowest; [{}] for an empty grid."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def library_digest(library: PBLibrary) -> str:
    """Digest of what the simulator reads of a library (PB ids and sizes, models and their PBs),
    part of every cell's key: another library gives other cells, while a re-export that only
    adds labels or store links (`members`) keeps the finished ones."""
    content = {
        "pbs": [[pb.id, pb.bytes] for pb in library.pbs],
        "models": [[m.name, list(m.pbs), m.kind, m.base] for m in library.models],
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Sweep:
    """A sweep: one scenario config per grid point (built by the caller), policies and seeds."""

    points: list[dict[str, Any]]
    configs: list[ScenarioConfig]
    policies: list[str]
    seeds: list[int]
    slots: int

    def cells(self, library: PBLibrary) -> list[Cell]:
        digest = library_digest(library)
        return [
            Cell(
                {
                    "point": point,
                    "policy": policy,
                    "seed": seed,
                    "slots": self.slots,
                    "config": cfg.to_dict(),
                    "library": digest,
                }
            )
            for point, cfg in zip(self.points, self.configs)
            for policy in self.policies
            for seed in self.seeds
        ]


def sweep_task(params: dict[str, Any], library: PBLibrary) -> dict[str, Any]:
    """One cell: `run_policy` on the cell's config and seed; its summary (JSON-able)."""
    config = ScenarioConfig.from_dict(params["config"], where="cell config")
    run = run_policy(config, library, params["policy"], params["slots"], params["seed"])
    return run.summary()


def results_csv(results: list[CellResult], grid_keys: list[str]) -> str:
    """One row per finished cell: grid keys, policy, seed, then RESULT_COLUMNS (floats as repr,
    so a row reads back to the exact value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*grid_keys, "policy", "seed", *RESULT_COLUMNS])
    for r in results:
        p = r.cell.params
        writer.writerow(
            [
                *(p["point"][k] for k in grid_keys),
                p["policy"],
                p["seed"],
                *(repr(r.result[c]) if isinstance(r.result[c], float) else r.result[c] for c in RESULT_COLUMNS),
            ]
        )
    return buf.getvalue()


def summarise(results: list[CellResult], grid_keys: list[str]) -> list[dict[str, Any]]:
    """Per (grid point, policy), in first-seen order: n seeds and mean with 95 % t-interval."""
    groups: dict[str, list[CellResult]] = {}
    for r in results:
        p = r.cell.params
        groups.setdefault(json.dumps([p["point"], p["policy"]], sort_keys=True), []).append(r)
    rows = []
    for members in groups.values():
        p = members[0].cell.params
        row: dict[str, Any] = {
            **{k: p["point"][k] for k in grid_keys},
            "policy": p["policy"],
            "mode": members[0].result["mode"],
            "n": len(members),
            "seeds": [m.cell.params["seed"] for m in members],
        }
        for key in SUMMARY_KEYS:
            row[key] = Interval.from_samples([m.result[key] for m in members]).to_json()
        rows.append(row)
    return rows


def run_sweep(
    sweep: Sweep,
    library: PBLibrary,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    executor: str = "ray",
    meta: dict[str, Any] | None = None,
    label: str = "sweep",
    task: Callable[[dict[str, Any], PBLibrary], dict[str, Any]] | None = None,
) -> tuple[RunReport, dict[str, Any]]:
    """Run the sweep's unfinished cells; write results.csv and summary.json atomically as cells
    finish. Returns the engine report and the final summary. `meta` is copied into summary.json.

    `task` replaces `sweep_task` (a module-level function returning at least its keys).

    Raises EngineError (a cell failed, the directory cannot be written, no cluster at address).
    """
    out = Path(out_dir)
    grid_keys = list(sweep.points[0]) if sweep.points else []
    cells = sweep.cells(library)
    computed = {"n": 0}
    summary: dict[str, Any] = {}

    def write(results: list[CellResult]) -> None:
        summary.clear()
        summary.update(
            {
                SCHEMA_KEY: schema_id("sweep-summary"),
                "computed": computed["n"],
                "cells": len(cells),
                "finished": len(results),
                "policies": sweep.policies,
                "seeds": sweep.seeds,
                "slots": sweep.slots,
                "grid_keys": grid_keys,
                "library": {"source": library.source, "synthetic": library.synthetic, **library.sharing()},
                **(meta or {}),
                "rows": summarise(results, grid_keys),
            }
        )
        atomic_write_text(out / "results.csv", results_csv(results, grid_keys))
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")

    finished_before = _count_finished(out, cells)

    def counting_write(results: list[CellResult]) -> None:
        computed["n"] = len(results) - finished_before
        write(results)

    report = run_cells(
        cells,
        task or sweep_task,
        out,
        shared=library,
        workers=workers,
        address=address,
        write=counting_write,
        label=label,
        executor=executor,
    )
    return report, summary


def _count_finished(out: Path, cells: list[Cell]) -> int:
    from delivery.engine import read_finished

    done = read_finished(out)
    return sum(1 for c in cells if c.key in done)


def build_sweep(
    build_config: Callable[[list[str]], ScenarioConfig],
    grid: dict[str, list[Any]],
    policies: list[str],
    seeds: list[int],
    slots: int,
) -> Sweep:
    """A sweep whose config for each grid point is `build_config(["key=value", ...])`: the
    caller's own `--config`/`--set` rule with the point's values as extra overrides (so a
    cell's config is the one `sim run --set key=value` would use). Raises ConfigError on a
    bad key or value, before any work."""
    from delivery.policies import make_policy

    for name in policies:
        make_policy(name)  # fail on a bad name before any work
    points = grid_points(grid)
    configs = [build_config([f"{k}={json.dumps(v)}" for k, v in point.items()]) for point in points]
    return Sweep(points=points, configs=configs, policies=policies, seeds=seeds, slots=slots)
