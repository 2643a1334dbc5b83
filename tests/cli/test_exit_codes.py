"""Exit codes (docs/cli.md): 2 bad input, 1 a runtime failure, 130 an interrupt, each one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pbkit.cli import main
from pbkit.errors import PbkitError

REPO = Path(__file__).resolve().parents[2]


def _run(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_runtime_error_classes_exit_1_and_input_errors_2():
    from delivery.engine import EngineError
    from delivery.errors import ConfigError
    from pbkit.zoo.builder import ZooBuildError
    from pbkit.zoo.spec import ZooSpecError

    assert EngineError.exit_code == ZooBuildError.exit_code == 1
    assert PbkitError.exit_code == ConfigError.exit_code == ZooSpecError.exit_code == 2


def test_engine_failure_is_one_line_exit_1(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    argv = ["sweep", "--library", "synthetic", "--policies", "lfu", "--seeds", "1", "--slots", "1"]
    code, out, err = _run(capsys, [*argv, "--scenario", "small", "--out", str(tmp_path / "afile" / "run")])
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("pbkit: error: ") and "afile" in err, err


def test_zoo_build_held_by_another_build_exits_1(tmp_path, capsys):
    import fcntl

    zoo = tmp_path / "zoo"
    (zoo / ".zoo").mkdir(parents=True)
    with open(zoo / ".zoo" / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        code, _, err = _run(capsys, ["--store", str(tmp_path / "s"), "zoo", "build", "default", "--out", str(zoo)])
    assert code == 1 and "another `pbkit zoo build` is running" in err, err


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_exits_130_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pbkit.cli", "sim", "run", "--library", "synthetic", "--slots", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        # a shell's background job starts with SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(6)  # past start-up, inside the simulation
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, err
    # the run's own progress lines may come first (a long run reports after a few seconds);
    # the interrupt itself is one line, with no traceback
    lines = err.splitlines()
    assert lines[-1] == "pbkit: interrupted" and "Traceback" not in err, err
    assert all(" elapsed " in line for line in lines[:-1]), err
