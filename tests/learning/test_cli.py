import json

from pbkit.cli import main


def test_train_resume_and_eval_from_the_command_line(tiny_library, tmp_path, capsys, result_document):
    lib = tiny_library.save(tmp_path / "library.json")
    out = tmp_path / "run"
    common = ["learn", "train", "--library", str(lib), "--out", str(out), "--no-progress"]
    args = common + [
        "--config",
        "quick",
        "--set",
        "total_steps=40",
        "--set",
        "eval_every=20",
        "--set",
        "bc_episodes=1",
        "--set",
        "warmup_steps=20",
        "--set",
        "scenario.n_users=8",
        "--set",
        "eval_slots=3",
    ]
    assert main(args + ["--stop-after", "20"]) == 0
    assert main(common + ["--resume"]) == 0
    assert "step 40" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["total_steps"] == 40
    # the eval contract (issue 8 §3): one entry per policy plus the checkpoint's learner, on the
    # same seeded scenarios as `pbkit sim run` (small scenario: 8 users, MRT, to stay fast)
    scenario = ["--set", "n_users=8", "--set", "beamformer=mrt"]
    assert (
        main(
            [
                "learn",
                "eval",
                "--checkpoint",
                str(out),
                "--library",
                str(lib),
                "--seeds",
                "100,101",
                "--slots",
                "4",
                "--policies",
                "lfu,greedy",
                *scenario,
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result["policies"]) == {"lfu", "greedy", "maasn-da"}
    assert all(len(p["per_seed"]) == 2 and isinstance(p["mean_delay_s"], float) for p in result["policies"].values())
    paired = result["paired"]["maasn-da"]
    assert paired["vs"] == min(("lfu", "greedy"), key=lambda h: result["policies"][h]["mean_delay_s"])
    assert paired["lo"] <= paired["mean"] <= paired["hi"] and paired["n"] == 2
    assert all(p["interval"]["mean"] == p["mean_delay_s"] for p in result["policies"].values())
    assert result_document(result, "learn-eval") == 3 + 1
    runs = []
    for seed in (100, 101):
        assert (
            main(
                [
                    "sim",
                    "run",
                    "--library",
                    str(lib),
                    "--policy",
                    "lfu",
                    "--seed",
                    str(seed),
                    "--slots",
                    "4",
                    *scenario,
                    "--json",
                ]
            )
            == 0
        )
        runs.append(json.loads(capsys.readouterr().out)["mean_delay_s"])
    assert result["policies"]["lfu"]["per_seed"] == runs
    assert abs(result["policies"]["lfu"]["mean_delay_s"] - sum(runs) / 2) < 1e-12


def test_default_evaluation_is_ten_held_out_seeds():
    from learning.config import TEST_SEEDS, TrainConfig

    assert len(set(TEST_SEEDS)) >= 10
    assert not set(TEST_SEEDS) & set(TrainConfig().val_seeds)  # the best-checkpoint choice never sees them


def test_shipped_library_names_resolve(capsys):
    from learning.cli import library_arg

    assert len(library_arg("llama-2-lora").models) == 23
    assert main(["learn", "eval", "--checkpoint", "nowhere", "--library", "no-such-library"]) == 2
    assert "no-such-library" in capsys.readouterr().err


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["learn", "train", "--library", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["learn", "train", "--library", "synthetic", "--out", str(tmp_path), "--set", "gama=1"]) == 2
    assert "gama" in capsys.readouterr().err
    assert main(["learn", "train", "--library", "synthetic", "--out", str(tmp_path / "x"), "--resume"]) == 2
    capsys.readouterr()
    assert main(["learn", "eval", "--checkpoint", str(tmp_path / "nowhere"), "--library", "synthetic"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "no checkpoint" in err


def test_report_rejects_bad_train_seeds(tmp_path):
    assert (
        main(["learn", "report", "--library", "synthetic", "--out", str(tmp_path / "r"), "--train-seeds", "1,a"]) == 2
    )
    assert (
        main(["learn", "report", "--library", "synthetic", "--out", str(tmp_path / "r"), "--variants", "maasn-xyz"])
        == 2
    )
    assert not (tmp_path / "r").exists()
