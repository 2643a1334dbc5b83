"""Output when stdout/stderr is not a terminal: progress lines, unwrapped tables, summaries."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pbkit.cli import main
from pbkit.common.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_lines_at_intervals():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(stream=stream, interval=5.0, clock=clock) as bar:
        task = bar.add_task("training", total=400)
        for step in range(1, 401):
            clock.now += 0.125  # 50 s in all: a line every 5 s, the last one when done
            bar.update(task, completed=step)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10, lines
    assert lines[0] == "training: 40/400 (10 %), elapsed 5.0 s, about 45 s left"
    assert lines[-1] == "training: 400/400 (100 %), elapsed 50 s"


def test_plain_progress_bytes_unknown_total_and_disable():
    stream, clock = io.StringIO(), FakeClock()
    bar = Progress(stream=stream, interval=1.0, clock=clock, unit="B")
    a = bar.add_task("hashing", total=3_000_000_000)
    b = bar.add_task("scanning")
    clock.now += 2
    bar.update(a, completed=1_500_000_000)
    bar.advance(b, 7)
    bar.update(b, description="scanned", advance=1)  # within the interval: no line
    assert stream.getvalue().splitlines() == [
        "hashing: 1.50 GB/3.00 GB (50 %), elapsed 2.0 s, about 2.0 s left",
        "scanning: 7 B, elapsed 2.0 s",
    ]
    short = io.StringIO()
    fast = Progress(stream=short, interval=5.0, clock=clock)
    t = fast.add_task("quick", total=10)
    clock.now += 1
    fast.update(t, completed=10)  # done within the interval: silent
    assert short.getvalue() == ""
    quiet = io.StringIO()
    off = Progress(stream=quiet, disable=True, interval=0)
    off.update(off.add_task("x", total=1), completed=1)
    assert quiet.getvalue() == ""


def _tiny_model(root, seed: int, name_len: int = 0):
    from safetensors.numpy import save_file

    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    save_file(
        {f"layer{i}.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(3)},
        str(root / "model.safetensors"),
    )
    (root / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return root


def _run(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store_with_two(tmp_path, capsys):
    store = tmp_path / "store"
    base = _tiny_model(tmp_path / "base", 0)
    ft = tmp_path / "ft"
    shutil.copytree(base, ft)
    from safetensors.numpy import load_file, save_file

    sd = load_file(str(ft / "model.safetensors"))
    sd["layer1.weight"] = sd["layer1.weight"] + 1
    save_file(sd, str(ft / "model.safetensors"))
    long_name = "a-fine-tune-with-a-rather-long-name-" + "x" * 60
    assert _run(capsys, "--store", store, "ingest", base, "--name", "base")[0] == 0
    assert _run(capsys, "--store", store, "ingest", ft, "--name", long_name, "--base", "base")[0] == 0
    return store, long_name


def test_tables_do_not_wrap_when_not_a_terminal(store_with_two, capsys):
    store, long_name = store_with_two
    code, out, _ = _run(capsys, "--store", store, "ls")
    assert code == 0
    row = next(line for line in out.splitlines() if long_name in line)
    assert "partial-finetune" in row and " kB" in row, out  # the whole row on one line


def test_need_summary_by_default_table_with_verbose(store_with_two, capsys):
    store, long_name = store_with_two
    code, out, _ = _run(capsys, "--store", store, "need", long_name, "--have", "base")
    assert code == 0 and len(out.strip().splitlines()) == 1
    assert re.search(r": needs 1 of \d+ blocks, 16.4 kB of ", out), out  # layer1.weight, 64*64*4 bytes
    code, out, _ = _run(capsys, "--store", store, "need", long_name, "--have", "base", "--verbose")
    assert code == 0 and "block id" in out and "layer1.weight" in out


def test_plan_names_config_json_after_architecture_and_prints_mb(tmp_path, capsys):
    import pbkit.library.plans

    src = Path(pbkit.library.plans.__path__[0]) / "configs" / "gpt2.json"
    cfg = tmp_path / "config.json"
    shutil.copy(src, cfg)
    code, out, err = _run(capsys, "plan", "--arch", cfg, "--out", tmp_path / "lib.json")
    assert code == 0, err
    assert "logical 497.8 MB, unique 497.8 MB" in out  # not 497,759,232 B
    assert re.search(r"GPT2LMHeadModel +base +124.4 M params +497.8 MB own", out), out
    lib = json.loads((tmp_path / "lib.json").read_text())
    assert [m["name"] for m in lib["models"]] == ["GPT2LMHeadModel"]
    code, out, _ = _run(capsys, "plan", "--arch", cfg, "--name", "mine", "--out", tmp_path / "lib2.json")
    assert code == 0 and "mine" in out
