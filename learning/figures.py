"""The figure set of the seed paper's kind (`pbkit figures`), measured with sweeps on the engine.

Each panel is one sweep (delivery/sweep.py) over one scenario setting, on each library: every
point is a mean over `seeds` seeds (the same seeds for every series, so series are paired) with
a 95 % t-interval band. The sweeps are resumable: their data stays in OUT/data/<library>/<panel>/
and a rerun with the same settings computes nothing new. Panels:

  capacity   mean delay vs cache capacity (fraction of unique bytes): lfu, greedy (fine), coarse, noncoop
  modes      fine (greedy) vs coarse vs noncoop at the default capacity (bars, from `capacity`)
  users      mean delay vs number of users                     (lfu, greedy)
  antennas   mean delay vs antennas per EN                     (lfu, greedy)
  power      mean delay vs transmit power per EN (dBm)         (lfu, greedy)
  csi        mean delay vs CSI error bound: beamformers robust, fast (non-robust), fast-backoff (greedy)
  zipf       mean delay vs Zipf exponent of the requests       (lfu, greedy)
  learning   learning curves with and without DA, from a `pbkit learn report` results.json (if given)

`learning` imports delivery only (sweeps, configs); delivery never imports this module.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from delivery.config import ScenarioConfig
from delivery.engine import ray_session
from delivery.interval import Interval
from delivery.sweep import Sweep, build_sweep, run_sweep
from learning.config import ScenarioSettings
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import SCHEMA_KEY, check_schema, schema_id
from pbkit.errors import PbkitError
from pbkit.library import PBLibrary


@dataclass(frozen=True)
class Panel:
    name: str
    key: str  # the scenario setting on the x axis
    values: tuple[Any, ...]
    xlabel: str
    policies: tuple[str, ...] = ("lfu", "greedy")
    series_key: str = "policy"  # what one line is: a policy, or another grid key
    series_values: tuple[Any, ...] = ()


PANELS: tuple[Panel, ...] = (
    Panel(
        "capacity",
        "cache_fraction",
        (0.15, 0.3, 0.5, 0.7),
        "cache capacity per EN (fraction of unique bytes)",
        ("lfu", "greedy", "coarse", "noncoop"),
    ),
    Panel("users", "n_users", (10, 20, 30, 40), "number of users"),
    Panel("antennas", "antennas", (2, 4, 6, 8), "antennas per EN"),
    Panel("power", "power_dbm", (20.0, 25.0, 30.0, 35.0), "transmit power per EN (dBm)"),
    Panel(
        "csi",
        "csi_error",
        (0.0, 0.05, 0.1, 0.2),
        "CSI error bound (relative)",
        ("greedy",),
        series_key="beamformer",
        series_values=("fast", "fast-backoff", "robust"),
    ),
    Panel("zipf", "zipf_gamma", (0.4, 0.8, 1.2, 1.6), "Zipf exponent of the requests"),
)
MODES = {"greedy": "fine (greedy)", "coarse": "coarse", "noncoop": "non-cooperative"}


class FigurePlanError(PbkitError, ValueError):
    """A figure plan file or `--set` override is malformed."""


@dataclass(frozen=True)
class FigureSettings(ScenarioSettings):
    """What `pbkit figures` measures: a settings type of the one loader (pbkit.common.settings).

    Bundled (`bundled_figure_plans()`, learning/plans/figures/): `full` (the defaults) and
    `quick` (two points per axis, two series, 2 seeds, 1 slot: a smoke run). `seeds` takes the
    --seeds grammar (`10`, `0-9`, `0,3,5`) or a list; `panels` a list or `a,b`.
    """

    SETTINGS_ERROR = FigurePlanError  # not fields: no annotation
    SETTINGS_KIND = "figure plan"
    BUNDLED_DIR = Path(__file__).parent / "plans" / "figures"  # quick, full

    seeds: tuple[int, ...] = tuple(range(10))  # the same seeds for every series (paired)
    slots: int = 2  # slots per run
    quick: bool = False  # two points per axis and at most two series per panel
    panels: tuple[str, ...] = tuple(p.name for p in PANELS)
    # the scenario of every sweep: overrides of the default ScenarioConfig (`--scenario` layers a
    # scenario file's keys over them, `--set scenario.k=v` one key)
    scenario: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [p.name for p in PANELS]
        bad = [p for p in self.panels if p not in names]
        if bad:
            raise FigurePlanError(f"panels: {bad[0]!r} is not one of {', '.join(names)}")
        if not self.seeds or min(self.seeds) < 0:
            raise FigurePlanError(f"seeds = {list(self.seeds)}: give at least one non-negative seed")
        if self.slots < 1:
            raise FigurePlanError(f"slots = {self.slots} must be at least 1")
        self.scenario_config()  # a bad scenario setting fails before any sweep

    def scenario_config(self, extra: list[str] | tuple[str, ...] = ()) -> ScenarioConfig:
        """The scenario of the sweeps, with `key=value` items of a sweep's grid point on top.
        Raises FigurePlanError."""
        from delivery.errors import ConfigError
        from pbkit.common.settings import parse_set_overrides

        try:
            overrides = dict(self.scenario) | parse_set_overrides(list(extra), ConfigError)
            return ScenarioConfig.build(None, overrides, where="scenario")
        except ConfigError as exc:
            raise FigurePlanError(str(exc)) from None


def bundled_figure_plans() -> dict[str, Path]:
    """The figure plans shipped as package data, by name (quick, full)."""
    return FigureSettings.bundled()


@dataclass
class FigurePlan:
    """One `pbkit figures` run: its settings (with the scenario), the loaded libraries
    (label -> library), and where and how the sweeps run."""

    libraries: dict[str, PBLibrary]
    out: Path
    settings: FigureSettings = field(default_factory=FigureSettings)
    learn_results: Path | None = None
    learn_note: str = ""  # where the learn results come from (when made), for README.md
    workers: int | None = None
    address: str | None = None
    command: str = ""
    executor: str = "ray"  # "inline": no Ray, cells one by one in this process (tests)


def quick_panel(panel: Panel) -> Panel:
    """Two points per axis and at most two series: a smoke run of every panel."""
    return Panel(
        panel.name,
        panel.key,
        (panel.values[0], panel.values[-1]),
        panel.xlabel,
        panel.policies[:2],
        panel.series_key,
        panel.series_values[:2],
    )


def panel_sweep(panel: Panel, plan: FigurePlan) -> Sweep:
    """The sweep of one panel: grid = the x values (and the series values when a line is not a
    policy), policies, the plan's seeds; configs by `FigureSettings.scenario_config`."""
    grid: dict[str, list[Any]] = {panel.key: list(panel.values)}
    if panel.series_key != "policy":
        grid = {panel.series_key: list(panel.series_values), **grid}
    return build_sweep(plan.settings.scenario_config, grid, list(panel.policies), seed_list(plan), plan.settings.slots)


def seed_list(plan: FigurePlan) -> list[int]:
    """The seeds of every point."""
    return list(plan.settings.seeds)


def run_figures(plan: FigurePlan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every panel's sweep on every library, draw the figures into plan.out and write
    plan.out/figures.json (all plotted numbers) and plan.out/README.md (the command, the files).
    Raises EngineError/ConfigError from the sweeps; a missing or unreadable learn-results file is a
    PbkitError, raised before any sweep."""
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    panels = [p for p in PANELS if p.name in plan.settings.panels]
    if plan.settings.quick:
        panels = [quick_panel(p) for p in panels]
    learn = None
    if plan.learn_results is not None:
        # read before any sweep: a missing or broken file fails at once, and one replaced while
        # the sweeps run (they take an hour) cannot fail the run at its end
        try:
            learn = json.loads(Path(plan.learn_results).read_text())
        except FileNotFoundError:
            raise PbkitError(f"{plan.learn_results}: no such learn report results.json") from None
        except (OSError, ValueError) as exc:
            raise PbkitError(f"{plan.learn_results}: not a learn report results.json ({exc})") from None
        check_schema(learn, "learn-report", str(plan.learn_results))  # SchemaError: another kind or version
    started = time.perf_counter()
    data: dict[str, Any] = {
        SCHEMA_KEY: schema_id("figures"),
        "command": plan.command,
        "seeds": len(seed_list(plan)),
        "seed_list": seed_list(plan),
        "slots": plan.settings.slots,
        "quick": plan.settings.quick,
        "libraries": {},
        "panels": {},
    }
    computed = 0
    notes: list[str] = []
    session = ray_session(plan.workers, plan.address) if plan.executor == "ray" else contextlib.nullcontext()
    with session:
        for label, library in plan.libraries.items():
            data["libraries"][label] = {"source": library.source, **library.sharing()}
            for panel in panels:
                sweep = panel_sweep(panel, plan)
                log(f"figures: {label} {panel.name}: {len(sweep.cells(library))} cells")
                report, summary = run_sweep(
                    sweep,
                    library,
                    out / "data" / label / panel.name,
                    workers=plan.workers,
                    address=plan.address,
                    executor=plan.executor,
                    label=f"{label} {panel.name}",
                )
                computed += report.computed
                data["panels"][f"{label}/{panel.name}"] = {
                    "panel": panel.name,
                    "library": label,
                    "key": panel.key,
                    "series_key": panel.series_key,
                    "rows": summary["rows"],
                }
                for name, x, mean in draw_panel(summary["rows"], panel, label, plan, out / f"{label}-{panel.name}.png"):
                    notes.append(
                        f"`{label}-{panel.name}.png`: {name} at {panel.key} = {x:g} is off scale "
                        f"(mean {mean:.3g} s), marked at the top edge"
                    )
                if panel.name == "capacity":
                    draw_modes(summary["rows"], panel, label, plan, out / f"{label}-modes.png")
    if learn is not None:
        draw_learning(learn, out / "learning-curves.png")
    else:
        notes.append("learning curves: skipped (no --learn-results; give a `pbkit learn report` results.json)")
    data["computed"] = computed
    data["wall_s"] = time.perf_counter() - started
    data["notes"] = notes
    atomic_write_json(out / "figures.json", data, indent=1)
    (out / "README.md").write_text(_readme(plan, panels, notes))
    return data


def _series(rows: list[dict], panel: Panel) -> dict[str, list[tuple[float, float, float]]]:
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        name = row["policy"] if panel.series_key == "policy" else str(row[panel.series_key])
        d = Interval.from_json(row["mean_delay_s"], f"{panel.name} {name}")
        lines.setdefault(name, []).append((float(row[panel.key]), d.mean, d.half_width))
    return {k: sorted(v) for k, v in lines.items()}


def _subtitle(label: str, plan: FigurePlan, n: int) -> str:
    return f"{label}: {n} seeds x {plan.settings.slots} slots per point, 95 % t-interval bands"


# A point whose mean is this many times the panel's median point is drawn as a marker at the top
# edge instead: the nominal beamformer backed off to its worst-case rate has a worst-case SNR near
# zero at large CSI errors, so its "delay" is ~1e11 s and would flatten every other line to zero.
OFF_SCALE = 20.0


def off_scale(rows: list[dict], panel: Panel) -> list[tuple[str, float, float]]:
    """(series, x, mean) of the points drawn off scale (mean > OFF_SCALE x the panel's median)."""
    points = [(name, x, m) for name, pts in _series(rows, panel).items() for x, m, _ in pts]
    if not points:
        return []
    cap = OFF_SCALE * float(np.median([m for _, _, m in points]))
    return [(name, x, m) for name, x, m in points if m > cap]


def draw_panel(
    rows: list[dict], panel: Panel, label: str, plan: FigurePlan, path: Path
) -> list[tuple[str, float, float]]:
    """Mean delay against the panel's setting, one line per series, with 95 % bands. Points off
    scale (see OFF_SCALE) are left out of their line and marked at the top edge with their mean;
    returns them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    n = max((r["n"] for r in rows), default=0)
    off = off_scale(rows, panel)
    colors: dict[str, str] = {}
    for name, pts in _series(rows, panel).items():
        x, m, h = (np.array(v) for v in zip(*pts))
        hidden = np.array([any(o[0] == name and o[1] == xi for o in off) for xi in x])
        m, h = np.where(hidden, np.nan, m), np.where(hidden, np.nan, h)
        (line,) = ax.plot(x, m, marker="o", ms=3, label=MODES.get(name, name) if panel.name == "capacity" else name)
        ax.fill_between(x, m - h, m + h, color=line.get_color(), alpha=0.2)
        colors[name] = line.get_color()
    if off:  # headroom above the lines for the off-scale marks
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.3 * (high - low))
    for name, x0, mean in off:
        ax.annotate(
            f"{name}: {mean:.2g} s (off scale)",
            xy=(x0, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-4, -18),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=7,
            color=colors[name],
            arrowprops={"arrowstyle": "->", "color": colors[name]},
        )
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel("mean download delay (s)")
    ax.set_title(_subtitle(label, plan, n), fontsize=8)
    ax.legend(
        fontsize=8, title=None if panel.series_key == "policy" else f"{panel.series_key} (greedy)", title_fontsize=8
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return off


def draw_modes(rows: list[dict], panel: Panel, label: str, plan: FigurePlan, path: Path) -> None:
    """Fine vs coarse vs non-cooperative at the default capacity (or the nearest swept one)."""
    plt = _pyplot()
    xs = sorted({float(r[panel.key]) for r in rows})
    x0 = min(xs, key=lambda x: abs(x - plan.settings.scenario_config().cache_fraction))
    chosen = [r for r in rows if float(r[panel.key]) == x0 and r["policy"] in MODES]
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    names = [MODES[r["policy"]] for r in chosen]
    means = [r["mean_delay_s"]["mean"] for r in chosen]
    cis = [Interval.from_json(r["mean_delay_s"], r["policy"]).half_width for r in chosen]
    ax.bar(names, means, yerr=cis, capsize=4, color=["C1", "C2", "C3"][: len(names)])
    ax.set_ylabel("mean download delay (s)")
    n = max((r["n"] for r in chosen), default=0)
    ax.set_title(f"{_subtitle(label, plan, n)}\ncache {x0:g} of unique bytes", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_learning(results: dict, path: Path) -> None:
    """Validation delay against real steps for MAASN-DA and without DA: mean over training seeds
    with a 95 % t-interval band (results.json of `pbkit learn report`, key `curves`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name in ("maasn-da", "maasn-noda"):
        runs = results.get("curves", {}).get(name, [])
        if not runs:
            continue
        length = min(len(r) for r in runs)
        steps = np.array([row["step"] for row in runs[0][:length]])
        stats = [Interval.from_samples([run[i]["eval_delay_s"] for run in runs]) for i in range(length)]
        m, h = np.array([s.mean for s in stats]), np.array([s.half_width for s in stats])
        (line,) = ax.plot(steps, m, marker="o", ms=3, label=f"{name} ({len(runs)} training seeds)")
        ax.fill_between(steps, m - h, m + h, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("real environment steps (slots)")
    ax.set_ylabel("validation mean delay (s)")
    ax.set_title("learning curves with and without DA, 95 % bands over training seeds", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _readme(plan: FigurePlan, panels: list[Panel], notes: list[str]) -> str:
    lines = [
        "# Figures",
        "",
        "Made by:",
        "",
        "```",
        plan.command or "pbkit figures",
        "```",
        "",
        f"{len(seed_list(plan))} seeds x {plan.settings.slots} slots per point; bands are 95 % t-intervals over seeds; "
        "every series of a panel uses the same seeds (paired). Data: `figures.json`; the sweeps "
        "behind them (resumable) in `data/`.",
        "",
    ]
    for label in plan.libraries:
        for p in panels:
            lines.append(
                f"- `{label}-{p.name}.png`: mean delay vs {p.xlabel}"
                + (f", lines: {p.series_key}" if p.series_key != "policy" else f", policies {', '.join(p.policies)}")
            )
            if p.name == "capacity":
                lines.append(
                    f"- `{label}-modes.png`: fine (greedy) vs coarse vs non-cooperative at the default capacity"
                )
    if plan.learn_results is not None:
        # the learn report is not rerun here: say which file (and run) the curves are drawn from
        lines.append(
            f"- `learning-curves.png`: drawn from `{plan.learn_results}` as is (a `pbkit learn report` "
            f"results file; `pbkit figures` does not rerun the training){plan.learn_note}"
        )
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
