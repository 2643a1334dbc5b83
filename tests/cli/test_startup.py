"""Start-up imports only what the command needs (speed itself: benchmarks/bench_cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "torch", "scipy", "cvxpy", "transformers", "delivery.simulator", "delivery.experiment")

PROBE = """
import contextlib, io, json, sys
from pbkit.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules(argv: list[str]) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    return set(result["modules"])


@pytest.mark.parametrize("argv", [["--help"], ["sim", "--help"], ["learn", "--help"], ["ls"]], ids=" ".join)
def test_light_commands_import_nothing_heavy(argv, tmp_path):
    if argv == ["ls"]:
        from pbkit.store import Store

        Store.open(tmp_path / "s", create=True).close()
        argv = ["--store", str(tmp_path / "s"), "ls"]
    loaded = _modules(argv)
    assert not {m for m in HEAVY if m in loaded}, sorted(m for m in HEAVY if m in loaded)
