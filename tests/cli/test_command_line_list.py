"""The command-line cases of issue 18, each as a new user meets it: one line, the right exit code,
before any slow start-up (Ray, training), and outputs that say what they ran on."""

from __future__ import annotations

import re

import pytest

from pbkit.cli import main


def _run(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_input_error(code, err, *names):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("pbkit: error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err, err


NEGATIVE_SEEDS = [
    (["sim", "run", "--library", "synthetic", "--seed", "-1"], "--seed"),
    (["sim", "compare", "--library", "synthetic", "--first-seed", "-1"], "--first-seed"),
    (["learn", "eval", "--checkpoint", "{tmp}/run", "--library", "synthetic", "--seeds", "-5"], "--seeds"),
    (["learn", "train", "--library", "synthetic", "--out", "{tmp}/run", "--set", "seed=-1"], "seed = -1"),
    (["learn", "report", "--library", "synthetic", "--out", "{tmp}/rep", "--eval-seeds", "-3"], "--eval-seeds"),
    (["sweep", "--library", "synthetic", "--out", "{tmp}/sw", "--first-seed", "-1"], "--first-seed"),
    (["sweep", "--library", "synthetic", "--out", "{tmp}/sw", "--seeds", "3-1"], "--seeds"),
    (["figures", "--out", "{tmp}/fig", "--seeds", "0"], "--seeds"),
]


@pytest.mark.parametrize("argv,name", NEGATIVE_SEEDS, ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else v)
def test_bad_seeds_fail_fast_in_one_line(argv, name, tmp_path, capsys):
    code, _, err = _run(capsys, [a.format(tmp=tmp_path) for a in argv])
    _one_line_input_error(code, err, name)
    assert not (tmp_path / "sw").exists() and not (tmp_path / "run").exists()  # nothing started


def test_missing_scenario_file_says_missing(tmp_path, capsys):
    missing = str(tmp_path / "missing.yaml")
    code, _, err = _run(capsys, ["sim", "run", "--library", "synthetic", "--scenario", missing])
    _one_line_input_error(code, err, missing, "no such scenario file")
    code, _, err = _run(capsys, ["sim", "run", "--library", "synthetic", "--scenario", "smal"])
    _one_line_input_error(code, err, "smal", "not a bundled scenario (have: default, ")


def test_library_export_under_a_file_names_the_file(tmp_path, capsys):
    from store_helpers import small_model, toy_tensors

    from pbkit.store import Store

    with Store.open(tmp_path / "store") as store:
        store.ingest(small_model(tmp_path / "toy", toy_tensors(1, n=2, dim=16)), name="toy")
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "lib.json"
    code, _, err = _run(capsys, ["--store", str(tmp_path / "store"), "library", "export", "--out", str(out)])
    assert code in (1, 2), err
    assert err.count("\n") == 1 and str(tmp_path / "afile") in err and "not a directory" in err, err
    assert "File exists" not in err


def test_empty_grid_value_is_named(tmp_path, capsys):
    argv = ["sweep", "--library", "synthetic", "--out", str(tmp_path / "sw"), "--grid", "cache_fraction=0.2,,0.4"]
    code, _, err = _run(capsys, argv)
    _one_line_input_error(code, err, "cache_fraction=0.2,,0.4", "value 2 of 3 is empty")
    assert not (tmp_path / "sw").exists()


def test_sim_run_names_library_and_scenario_with_units(capsys):
    argv = ["sim", "run", "--library", "synthetic", "--slots", "1", "--scenario", "small", "--set", "beamformer=mrt"]
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    assert "library synthetic" in out and "scenario small + beamformer=mrt" in out, out
    assert "beamformer designs solved / reused" in out and "cache hits" not in out
    assert not re.search(r"\d\.\d+e[+-]\d", out), out  # bytes with units, not 3.075e+09
    assert re.search(r"backhaul / cloud .* [kMGT]?B / ", out), out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_old_config_spelling_still_works_with_a_note(capsys):
    argv = ["sim", "run", "--library", "synthetic", "--slots", "1", "--config", "small", "--set", "beamformer=mrt"]
    code, out, err = _run(capsys, [*argv, "--json"])
    assert code == 0 and "--config here is deprecated; it is now --scenario" in err, err
    code, _, err = _run(capsys, [*argv, "--scenario", "small"])
    _one_line_input_error(code, err, "--config")
