import json

from pbkit.cli import main


def test_train_resume_and_eval_from_the_command_line(tiny_library, tmp_path, capsys):
    lib = tiny_library.save(tmp_path / "library.json")
    out = tmp_path / "run"
    common = ["learn", "train", "--library", str(lib), "--out", str(out), "--no-progress"]
    args = common + ["--config", "quick", "--set", "total_steps=40", "--set", "eval_every=20",
                     "--set", "warmup_steps=20", "--set", "scenario.n_users=8", "--set", "eval_slots=3"]
    assert main(args + ["--stop-after", "20"]) == 0
    assert main(common + ["--resume"]) == 0
    assert "step 40" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["total_steps"] == 40
    assert main(["learn", "eval", "--checkpoint", str(out), "--library", str(lib), "--seeds", "1,2",
                 "--slots", "2", "--policies", "random", "--set", "scenario.n_users=8"]) == 0
    table = capsys.readouterr().out
    assert "maasn" in table and "random" in table


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["learn", "train", "--library", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["learn", "train", "--library", "synthetic", "--out", str(tmp_path), "--set", "gama=1"]) == 2
    assert "gama" in capsys.readouterr().err
    assert main(["learn", "train", "--library", "synthetic", "--out", str(tmp_path / "x"), "--resume"]) == 2


def test_report_rejects_bad_train_seeds(tmp_path):
    from pbkit.cli import main

    assert main(["learn", "report", "--library", "synthetic", "--out", str(tmp_path / "r"),
                 "--train-seeds", "1,a"]) == 2
    assert not (tmp_path / "r").exists()
