"""`pbkit sweep` and the engine: rows equal run_policy, resume, kill mid-run, Ray local."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from delivery.config import ScenarioConfig
from delivery.engine import CELLS_FILE, Cell, EngineError, read_finished, run_cells
from delivery.errors import ConfigError
from delivery.experiment import run_policy
from delivery.sweep import build_sweep, grid_points, parse_grid, run_sweep
from pbkit.cli import main
from pbkit.library import synthetic_library


def _library():
    return synthetic_library(
        np.random.default_rng(3), families=2, models_per_family=3, base_pbs=6, own_pbs=2, mean_pb_bytes=4e6
    )


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_parse_grid_and_points():
    grid = parse_grid(["cache_fraction=0.2,0.4", "beamformer=mrt,fast"])
    assert grid == {"cache_fraction": [0.2, 0.4], "beamformer": ["mrt", "fast"]}
    assert grid_points(grid)[1] == {"cache_fraction": 0.2, "beamformer": "fast"}
    assert len(grid_points(grid)) == 4 and grid_points({}) == [{}]
    for bad in (["cache_fraction"], ["=1,2"], ["a=1", "a=2"], ["n_users="]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_sweep_rows_equal_run_policy_and_rerun_computes_nothing(tmp_path, result_document):
    lib = _library()
    sweep = build_sweep(
        lambda extra: ScenarioConfig.build("small", ["beamformer=mrt", *extra]),
        parse_grid(["cache_fraction=0.2,0.5"]),
        ["lfu", "coarse"],
        [0, 1],
        2,
    )
    report, summary = run_sweep(sweep, lib, tmp_path, executor="inline")
    assert report.computed == 8 and summary["computed"] == 8
    rows = _rows(tmp_path / "results.csv")
    assert len(rows) == 8 and list(rows[0])[:4] == ["cache_fraction", "policy", "seed", "mean_delay_s"]
    for row in rows:
        cfg = ScenarioConfig.build("small", ["beamformer=mrt", f"cache_fraction={row['cache_fraction']}"])
        direct = run_policy(cfg, lib, row["policy"], 2, int(row["seed"])).summary()
        assert float(row["mean_delay_s"]) == direct["mean_delay_s"]  # exact, not approximately
        assert row["mode"] == direct["mode"]
    coarse = [r for r in summary["rows"] if r["policy"] == "coarse"][0]
    assert coarse["mode"] == "coarse" and coarse["n"] == 2 and coarse["mean_delay_s"]["half_width"] > 0
    assert coarse["mean_delay_s"]["n"] == 2
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert result_document(on_disk, "sweep-summary") == 4 * len(on_disk["rows"]) == 16
    # a rerun finds every cell done; a larger grid computes only the new points
    report, summary = run_sweep(sweep, lib, tmp_path, executor="inline")
    assert report.computed == 0 and summary["computed"] == 0 and summary["finished"] == 8
    more = build_sweep(
        lambda extra: ScenarioConfig.build("small", ["beamformer=mrt", *extra]),
        parse_grid(["cache_fraction=0.2,0.5,0.8"]),
        ["lfu", "coarse"],
        [0, 1],
        2,
    )
    report, summary = run_sweep(more, lib, tmp_path, executor="inline")
    assert report.computed == 4 and len(_rows(tmp_path / "results.csv")) == 12
    # other settings are other cells, never a stale result
    other = build_sweep(
        lambda extra: ScenarioConfig.build("small", ["beamformer=mrt", *extra]),
        parse_grid(["cache_fraction=0.2"]),
        ["lfu"],
        [0],
        3,
    )
    assert run_sweep(other, lib, tmp_path, executor="inline")[0].computed == 1


def _square(params, shared):
    if params["x"] == 13:
        raise ValueError("thirteen")
    return {"y": params["x"] ** 2 + shared}


def test_engine_torn_line_write_callback_and_failure(tmp_path):
    cells = [Cell({"x": x}) for x in range(5)]
    seen = []
    report = run_cells(cells[:3], _square, tmp_path, shared=1, executor="inline", write=lambda rs: seen.append(len(rs)))
    assert report.computed == 3 and seen == [1, 2, 3, 3]
    with open(tmp_path / CELLS_FILE, "a") as fh:
        fh.write('{"key": "torn", "res')  # a kill during an append
    report = run_cells(cells, _square, tmp_path, shared=1, executor="inline")
    assert (report.computed, report.skipped) == (2, 3)
    assert [r.result["y"] for r in report.results] == [1, 2, 5, 10, 17]
    assert len(read_finished(tmp_path)) == 5  # the new records did not glue onto the torn line
    with pytest.raises(ValueError, match="thirteen"):
        run_cells([Cell({"x": 13})], _square, tmp_path, shared=0, executor="inline")
    with pytest.raises(EngineError, match="same params"):
        run_cells([cells[0], cells[0]], _square, tmp_path, executor="inline")


KILL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from delivery.config import ScenarioConfig
    from delivery.sweep import build_sweep, parse_grid, run_sweep
    from pbkit.library import synthetic_library
    lib = synthetic_library(np.random.default_rng(3), families=2, models_per_family=3, base_pbs=6,
                            own_pbs=2, mean_pb_bytes=4e6)
    sweep = build_sweep(lambda extra: ScenarioConfig.build("small", ["beamformer=mrt", *extra]),
                        parse_grid(["n_users=4,6,8"]), ["lfu", "greedy"], [0, 1, 2], 3)
    run_sweep(sweep, lib, sys.argv[1], executor="inline")
""")


def test_killed_sweep_resumes_and_completes(tmp_path):
    out = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_finished(out)) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(read_finished(out))
    assert 3 <= before < 18, "the sweep finished before it could be killed; make cells slower"
    # The tables are rewritten right after each cell's record is appended: a kill between the two
    # leaves them one cell behind (never ahead, never torn); the rerun rewrites them.
    assert before - 1 <= len(_rows(out / "results.csv")) <= before
    lib = _library()
    sweep = build_sweep(
        lambda extra: ScenarioConfig.build("small", ["beamformer=mrt", *extra]),
        parse_grid(["n_users=4,6,8"]),
        ["lfu", "greedy"],
        [0, 1, 2],
        3,
    )
    report, summary = run_sweep(sweep, lib, out, executor="inline")
    assert report.computed == 18 - before and summary["finished"] == 18
    rows = _rows(out / "results.csv")
    assert len(rows) == 18
    row = rows[-1]
    cfg = ScenarioConfig.build("small", ["beamformer=mrt", f"n_users={row['n_users']}"])
    assert (
        float(row["mean_delay_s"]) == run_policy(cfg, lib, row["policy"], 3, int(row["seed"])).summary()["mean_delay_s"]
    )


def test_cli_sweep_on_local_ray_one_worker(tmp_path, capsys, result_document):
    """The one test that starts Ray (several seconds): the real CLI, embedded Ray, 1 worker."""
    lib_path = tmp_path / "lib.json"
    _library().save(lib_path)
    out = tmp_path / "out"
    args = [
        "sweep",
        "--library",
        str(lib_path),
        "--policies",
        "lfu,greedy",
        "--seeds",
        "2",
        "--slots",
        "2",
        "--grid",
        "cache_fraction=0.2,0.4",
        "--scenario",
        "small",
        "--set",
        "beamformer=mrt",
        "--out",
        str(out),
        "--workers",
        "1",
        "--json",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["computed"] == 8 and len(summary["rows"]) == 4
    assert result_document(summary, "sweep-summary") == 4 * 4  # the printed document is summary.json
    assert summary == json.loads((out / "summary.json").read_text())
    rows = _rows(out / "results.csv")
    row = rows[5]
    cfg = ScenarioConfig.build("small", ["beamformer=mrt", f"cache_fraction={row['cache_fraction']}"])
    direct = run_policy(cfg, _library(), row["policy"], 2, int(row["seed"])).summary()
    assert float(row["mean_delay_s"]) == direct["mean_delay_s"]
    assert main(args) == 0  # rerun: nothing to do, Ray not even started
    assert json.loads(capsys.readouterr().out)["computed"] == 0
    assert main(["sweep", "--library", str(lib_path), "--grid", "no_such_key=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and err.count("\n") == 1


def test_cli_sweep_bad_grid_value_names_the_option(tmp_path, capsys):
    """A grid value of the wrong type is one line naming --grid (not just --set), before any work."""
    lib_path = tmp_path / "lib.json"
    _library().save(lib_path)
    out = tmp_path / "out"
    assert main(["sweep", "--library", str(lib_path), "--grid", "cache_fraction=abc", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--grid" in err and "cache_fraction" in err and "'abc'" in err and err.count("\n") == 1
    assert not out.exists()
