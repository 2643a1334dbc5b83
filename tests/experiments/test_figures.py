"""The figure set in quick mode, without Ray (the engine's inline executor): every panel drawn,
numbers in figures.json agree with the sweeps, a rerun computes nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from delivery.interval import Interval
from learning.figures import PANELS, FigurePlan, FigureSettings, draw_panel, run_figures
from pbkit.cli import main
from pbkit.errors import PbkitError
from pbkit.library import synthetic_library

RESULTS = {
    "schema": "pbkit.learn-report/2",
    "curves": {
        name: [[{"step": s, "eval_delay_s": 3.0 - s / 1000 + seed / 10} for s in (100, 200)] for seed in range(3)]
        for name in ("maasn-da", "maasn-noda")
    },
}


def _plan(tmp_path: Path, learn: Path | None) -> FigurePlan:
    lib = synthetic_library(
        np.random.default_rng(3), families=2, models_per_family=3, base_pbs=6, own_pbs=2, mean_pb_bytes=4e6
    )
    return FigurePlan(
        libraries={"syn": lib},
        out=tmp_path / "fig",
        settings=FigureSettings.build(
            "quick", ["scenario.n_nodes=2", "scenario.antennas=2", "scenario.n_users=4", "scenario.beamformer=mrt"]
        ),
        learn_results=learn,
        executor="inline",
        command="pbkit figures --quick",
    )


def test_quick_figures_draw_every_panel_and_resume(tmp_path, result_document):
    learn = tmp_path / "results.json"
    learn.write_text(json.dumps(RESULTS))
    data = run_figures(_plan(tmp_path, learn), log=lambda m: None)
    out = tmp_path / "fig"
    for p in PANELS:
        assert (out / f"syn-{p.name}.png").stat().st_size > 5000
    assert (out / "syn-modes.png").exists() and (out / "learning-curves.png").exists()
    assert "pbkit figures --quick" in (out / "README.md").read_text()
    users = data["panels"]["syn/users"]["rows"]
    assert sorted({r["n_users"] for r in users}) == [10, 40] and all(r["n"] == 2 for r in users)
    # the plotted mean is the mean of the sweep's per-seed rows
    with open(out / "data" / "syn" / "users" / "results.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["n_users"] == "40" and r["policy"] == "greedy"]
    plotted = next(r for r in users if r["n_users"] == 40 and r["policy"] == "greedy")["mean_delay_s"]["mean"]
    assert abs(plotted - np.mean([float(r["mean_delay_s"]) for r in rows])) < 1e-12
    assert result_document(json.loads((out / "figures.json").read_text()), "figures") > 0
    csi = data["panels"]["syn/csi"]["rows"]
    assert {r["beamformer"] for r in csi} == {"fast", "fast-backoff"}
    assert data["computed"] == len(PANELS) * 8
    assert run_figures(_plan(tmp_path, None), log=lambda m: None)["computed"] == 0
    assert "learning curves: skipped" in (out / "README.md").read_text()


def test_figures_cli_rejects_bad_panel_before_any_work(tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path / "f"), "--library", "synthetic", "--panels", "capacity,nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and err.count("\n") == 1
    assert not (tmp_path / "f").exists()


def test_unreadable_learn_results_fail_before_any_sweep(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    old = tmp_path / "v1.json"  # written before the result schemas: no "schema" key
    old.write_text(json.dumps({k: v for k, v in RESULTS.items() if k != "schema"}))
    for learn in (bad, tmp_path / "missing.json", old):
        with pytest.raises(PbkitError) as err:
            run_figures(_plan(tmp_path, learn), log=lambda m: None)
        assert str(learn) in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / "fig" / "data").exists()


def test_a_point_far_off_scale_is_marked_not_plotted(tmp_path):
    # the backed-off nominal beamformer at a large CSI error: ~1e11 s next to ~1 s
    panel = next(p for p in PANELS if p.name == "csi")
    rows = [
        {
            "beamformer": bf,
            "csi_error": e,
            "policy": "greedy",
            "n": 10,
            "mean_delay_s": Interval(1.5e11 if (bf, e) == ("fast-backoff", 0.2) else 1.0 + e, 0.1, 10).to_json(),
        }
        for bf in panel.series_values
        for e in panel.values
    ]
    plan = _plan(tmp_path, None)
    assert draw_panel(rows, panel, "syn", plan, tmp_path / "csi.png") == [("fast-backoff", 0.2, 1.5e11)]
    assert (tmp_path / "csi.png").stat().st_size > 5000
    far = next(r for r in rows if r["mean_delay_s"]["mean"] > 1e10)
    far["mean_delay_s"] = Interval(3.0, 0.1, 10).to_json()  # within 20x the median: drawn as usual
    assert draw_panel(rows, panel, "syn", plan, tmp_path / "csi.png") == []


def test_figure_plans_are_settings_files(tmp_path, capsys):
    """Bundled plans, a round trip through a file, `--set` of a tuple field, one-line errors."""
    import dataclasses

    import yaml

    from learning.figures import FigurePlanError, bundled_figure_plans

    assert set(bundled_figure_plans()) >= {"quick", "full"} and FigureSettings.build("full") == FigureSettings()
    mine = dataclasses.replace(FigureSettings.build("quick"), seeds=(3, 5), scenario={"n_users": 4})
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in vars(mine).items()}))
    assert FigureSettings.build(path) == mine
    assert FigureSettings.build("quick", ["panels=users,csi", "seeds=4-6"]).panels == ("users", "csi")
    assert FigureSettings.build(None, ["seeds=4-6"]).seeds == (4, 5, 6)
    path.write_text("slot: 3\n")
    with pytest.raises(FigurePlanError, match=r"mine\.yaml: unknown key 'slot'"):
        FigureSettings.build(path)
    args = ["figures", "--out", str(tmp_path / "f"), "--library", "synthetic"]
    for extra, named in ((["--set", "n_users=4"], "scenario.n_users"), (["--config", "small"], "--scenario")):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err
    assert not (tmp_path / "f").exists()
