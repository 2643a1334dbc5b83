import json

import numpy as np

from pbkit.cli import main
from pbkit.library import synthetic_library


def _library(tmp_path):
    path = tmp_path / "library.json"
    synthetic_library(
        np.random.default_rng(3), families=2, models_per_family=3, base_pbs=6, own_pbs=2, mean_pb_bytes=4e6
    ).save(path)
    return path


def test_sim_run_json(tmp_path, capsys, result_document):
    lib = _library(tmp_path)
    args = [
        "sim",
        "run",
        "--library",
        str(lib),
        "--policy",
        "lfu",
        "--slots",
        "3",
        "--seed",
        "4",
        "--scenario",
        "small",
        "--set",
        "beamformer=mrt",
        "--set",
        "csi_error=0",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["slots"] == 3 and len(out["per_slot"]) == 3
    assert result_document(out, "sim-run") == 0  # one seed: no interval
    assert set(out["breakdown_s"]) == {"waiting", "preparation", "airtime", "retransmission"}
    assert out["config"]["n_nodes"] == 2 and out["config"]["beamformer"] == "mrt"
    assert 0 <= out["hit_ratio_local"] <= out["hit_ratio_edge"] <= 1
    assert out["mean_delay_s"] >= out["delay_lower_bound_s"] > 0
    assert main(args) == 0  # same seed, same numbers
    again = json.loads(capsys.readouterr().out)
    assert again["mean_delay_s"] == out["mean_delay_s"]


def test_sim_compare_writes_table_plot_and_json(tmp_path, capsys, result_document):
    lib = _library(tmp_path)
    out_dir = tmp_path / "cmp"
    args = [
        "sim",
        "compare",
        "--library",
        str(lib),
        "--policies",
        "lfu,coarse,noncoop",
        "--seeds",
        "3",
        "--slots",
        "2",
        "--scenario",
        "small",
        "--set",
        "beamformer=mrt",
        "--out",
        str(out_dir),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "coarse" in text and "±" in text
    result = json.loads((out_dir / "compare.json").read_text())
    assert list(result["policies"]) == ["lfu", "coarse", "noncoop"]
    assert result["policies"]["coarse"]["mode"] == "coarse"
    row = result["policies"]["lfu"]
    assert len(row["per_seed_mean_delay_s"]) == 3 and row["mean_delay_s"]["half_width"] > 0
    assert row["mean_delay_s"]["n"] == 3 and row["mean_delay_s"]["lo"] < row["mean_delay_s"]["mean"]
    # 4 keys x 3 policies, and the paired difference of each policy to the best heuristic
    assert result_document(result, "sim-compare") == 4 * 3 + 3
    assert (out_dir / "compare.png").stat().st_size > 1000


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"pbs": [{"id": "a", "bytes": -1}], "models": []}')
    assert main(["sim", "run", "--library", str(bad), "--slots", "1"]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and err.count("\n") == 1
    lib = _library(tmp_path)
    assert main(["sim", "run", "--library", str(lib), "--set", "power_dbm=-100"]) == 2
    assert "power_dbm" in capsys.readouterr().err
    assert main(["sim", "run", "--library", str(lib), "--policy", "best"]) == 2
    assert "unknown policy" in capsys.readouterr().err
