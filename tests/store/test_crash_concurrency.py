"""Real processes: an ingest killed with SIGKILL at several points leaves a store that verifies
clean and can be rerun to completion; two processes ingesting models that share PBs both succeed."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import numpy as np
import pytest
from store_helpers import PYTHON, REPO, finetune_of, sha256_tree

from pbkit.store import Store

# Ingest in a child process that SIGKILLs itself on the N-th progress event of a phase:
# "hash" (after a file is hashed), "write" (after an object is in place), "publish" (N=1: just
# before the index transaction, every object already written).
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pbkit.store import Store
    store_dir, src, name, phase, at = sys.argv[1:6]
    seen = 0
    def progress(p, done, total):
        global seen
        if p == phase:
            seen += 1
            if seen == int(at):
                os.kill(os.getpid(), signal.SIGKILL)
    with Store.open(store_dir) as s:
        s.ingest(src, name=name, progress=progress)
    print("completed")
    """
)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _check_clean(store_dir, name_absent):
    with Store.open(store_dir) as s:
        v = s.verify()
        assert v.ok, v.problems
        assert name_absent not in s.list_models()


@pytest.mark.parametrize("phase,at", [("hash", 3), ("write", 1), ("write", 40), ("publish", 1)])
def test_sigkill_during_ingest(phase, at, bundled_dir, tmp_path):
    store_dir = tmp_path / "store"
    proc = subprocess.run(
        [PYTHON, "-c", KILLER, str(store_dir), str(bundled_dir), "minilm", phase, str(at)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _check_clean(store_dir, "minilm")
    with Store.open(store_dir) as s:
        written = s.verify().unreferenced_objects
        if phase == "publish":
            assert written == 118  # every object was in place, only the index transaction was missing
        elif phase == "write":
            assert written == at
        r = s.ingest(bundled_dir, name="minilm")  # rerun to completion
        assert not r.unchanged and r.new_objects == 118 - written
        assert s.verify().ok and s.verify().unreferenced_objects == 0
        s.assemble("minilm", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(bundled_dir)


def test_sigkill_cli_ingest_at_random_times(bundled_dir, tmp_path):
    """Kill `pbkit ingest` after random delays (mid-copy of a large tensor included)."""
    store_dir = tmp_path / "store"
    rng = np.random.default_rng(2024)
    for delay in rng.uniform(0.2, 1.2, size=3):
        proc = subprocess.Popen(
            [PYTHON, "-m", "pbkit.cli", "--store", str(store_dir), "ingest", str(bundled_dir), "--name", "minilm"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        with Store.open(store_dir) as s:
            v = s.verify()
            assert v.ok, v.problems
            if "minilm" in s.list_models():
                # The kill came after the publishing transaction (or the run finished first):
                # the model is complete. Start over so the next kill lands mid-ingest again.
                s.remove("minilm")
                s.gc()
    with Store.open(store_dir) as s:
        s.ingest(bundled_dir, name="minilm")
        s.gc()  # removes stray temp files of killed writers
        v = s.verify()
        assert v.ok and v.temp_files == 0 and v.unreferenced_objects == 0
        s.assemble("minilm", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(bundled_dir)


def test_two_processes_ingest_models_sharing_pbs(bundled_dir, tmp_path):
    ft = finetune_of(bundled_dir, tmp_path / "ft", ["pooler.dense.weight"])
    store_dir = tmp_path / "store"  # created by whichever process gets there first
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "pbkit.cli", "--store", str(store_dir), "ingest", str(src), "--name", name, "--json"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src, name in ((bundled_dir, "minilm"), (ft, "minilm-ft"))
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err
    with Store.open(store_dir) as s:
        assert sorted(s.list_models()) == ["minilm", "minilm-ft"]
        v = s.verify()
        assert v.ok and v.unreferenced_objects == 0
        stats = s.stats()
        assert stats["shared_blocks"] > 100
        assert stats["unique_bytes"] < 0.52 * stats["logical_bytes"]
        for name, src in (("minilm", bundled_dir), ("minilm-ft", ft)):
            s.assemble(name, tmp_path / f"out-{name}")
            assert sha256_tree(tmp_path / f"out-{name}") == sha256_tree(src)


# Ingest that announces it is mid-way (objects staged, nothing published) and then dawdles.
SLOW = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pbkit.store import Store
    store_dir, src, name, marker = sys.argv[1:5]
    seen = 0
    def progress(p, done, total):
        global seen
        if p == "hash":
            seen += 1
            if seen == 2:
                Path(marker).write_text("mid-ingest")
                time.sleep(2.0)
    with Store.open(store_dir) as s:
        s.ingest(src, name=name, progress=progress)
    """
)


def test_gc_waits_for_a_running_ingest(bundled_dir, tmp_path):
    store_dir = tmp_path / "store"
    marker = tmp_path / "marker"
    with Store.open(store_dir) as s:
        proc = subprocess.Popen(
            [PYTHON, "-c", SLOW, str(store_dir), str(bundled_dir), "minilm", str(marker)],
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 60
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read() if proc.stderr else ""
        assert s.verify().temp_files > 0  # the ingest has staged objects that gc must not touch
        report = s.gc()  # blocks until the ingest has published
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        assert report.removed_objects == 0 and report.removed_temp_files == 0
        assert s.list_models() == ["minilm"]
        v = s.verify()
        assert v.ok and v.unreferenced_objects == 0
        s.assemble("minilm", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(bundled_dir)
