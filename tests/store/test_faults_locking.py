"""Faults during ingest and gc/ingest exclusion, with real processes.

- A write that fails part-way (ENOSPC or EIO injected into the child's `os.pwrite` (direct
  I/O), `os.copy_file_range`, `os.write` or `os.fsync`; SQLITE_FULL from a capped index) ends `pbkit ingest` with one error
  line and a non-zero exit, and leaves the store verifiable, the index unchanged and no
  temporary files (objects already in place when the index write fails are left for gc); the
  same ingest then succeeds.
- `gc` in another process while an ingest is running never deletes an object that the ingest
  found present (and so did not write) but has not yet published; also when `fcntl` cannot be
  imported (the lock is filelock's SQLite-based reader-writer lock). A control run with the lock
  disabled shows the same scenario does corrupt the store.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time

import pytest
from store_helpers import PYTHON, REPO, finetune_of, sha256_tree, store_state
from store_helpers import object_files as object_files_now

from pbkit.store import Store

# Runs `pbkit ARGS` in a child whose low-level writes fail after a budget of bytes (or calls).
FAULTY = textwrap.dedent(
    """
    import errno, os, sys
    where, err, budget = sys.argv[1], getattr(errno, sys.argv[2]), int(sys.argv[3])
    left = [budget]

    def fail():
        raise OSError(err, os.strerror(err))

    if where == "copy_file_range":
        real = os.copy_file_range
        def patched(src, dst, count, offset_src=None, offset_dst=None):
            if left[0] <= 0:
                fail()
            n = real(src, dst, min(count, left[0]), offset_src, offset_dst)  # a short copy, then ENOSPC
            left[0] -= n
            return n
        os.copy_file_range = patched
    elif where == "pwrite":  # the direct-I/O writes of big blocks (pbkit.store.objects._Direct)
        real = os.pwrite
        def patched(fd, data, offset):
            n = len(memoryview(data))
            if n > left[0]:
                fail()
            left[0] -= n
            return real(fd, data, offset)
        os.pwrite = patched
    elif where == "write":
        real = os.write
        def patched(fd, data):
            if left[0] <= 0:
                fail()
            n = real(fd, memoryview(data)[: left[0]])
            left[0] -= n
            return n
        os.write = patched
    elif where == "fsync":
        real = os.fsync
        def patched(fd):
            left[0] -= 1
            if left[0] < 0:
                fail()
            return real(fd)
        os.fsync = patched
    elif where == "sqlite_full":  # the index may not grow by a single page: SQLITE_FULL on publish
        import pbkit.store.index
        real_init = pbkit.store.index.Index.__init__
        def patched_init(self, path):
            real_init(self, path)
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count = {pages}")
        pbkit.store.index.Index.__init__ = patched_init
    from pbkit.cli import main
    sys.exit(main(sys.argv[4:]))
    """
)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="module")
def base_store(bundled_dir, tmp_path_factory):
    """A store holding the bundled model, and a full copy of it to ingest under faults."""
    root = tmp_path_factory.mktemp("faults")
    with Store.open(root / "store") as s:
        s.ingest(bundled_dir, name="minilm")
    ft = finetune_of(bundled_dir, root / "ft", ["embeddings.word_embeddings.weight", "pooler.dense.weight"])
    return root / "store", ft


# (where, errno, budget): part-way through the 46.9 MB word-embedding copy (direct writes),
# part-way through the pooler's 590 KB (a buffered in-kernel copy), the first header write,
# the 3rd fsync, the index transaction.
FAULTS = [
    ("pwrite", "ENOSPC", 20_000_000),
    ("copy_file_range", "ENOSPC", 100_000),
    ("copy_file_range", "EIO", 0),
    ("write", "ENOSPC", 100),
    ("fsync", "EIO", 2),
    ("sqlite_full", "ENOSPC", 0),
]


@pytest.mark.parametrize("where,err,budget", FAULTS, ids=[f"{w}-{e}" for w, e, _ in FAULTS])
def test_failed_write_leaves_store_unchanged(base_store, bundled_dir, tmp_path, where, err, budget):
    store_dir, ft = base_store
    before = store_state(store_dir)
    proc = subprocess.run(
        [PYTHON, "-c", FAULTY, where, err, str(budget), "--store", str(store_dir), "ingest", str(ft), "--name", "ft"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("pbkit: error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    expect = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}[err]
    assert (expect in lines[0]) if where != "sqlite_full" else ("full" in lines[0]), lines[0]
    # nothing was published: the same models as before, no stray temporary file; the objects
    # as before too, except when the index write failed after the objects were in place: those
    # stay, unreferenced, for gc (another ingest may be about to reference them)
    objects, models = store_state(store_dir)
    assert models == before[1]
    with Store.open(store_dir) as s:
        v = s.verify()
        assert v.ok and v.temp_files == 0, v.to_dict()
        assert s.list_models() == ["minilm"]
        if where == "sqlite_full":
            assert objects > before[0] and v.unreferenced_objects == len(objects - before[0])
            assert s.gc().removed_objects == v.unreferenced_objects
        assert object_files_now(store_dir) == before[0]
        s.assemble("minilm", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(bundled_dir)


def test_ingest_after_failed_writes_succeeds(base_store, tmp_path):
    store_dir, ft = base_store
    with Store.open(store_dir) as s:
        r = s.ingest(ft, name="ft")
        assert r.new_objects > 0
        assert s.verify().ok
        s.assemble("ft", tmp_path / "out")
        s.remove("ft")
        s.gc()
    assert sha256_tree(tmp_path / "out") == sha256_tree(ft)


# An ingest that, after its first two files (whose blocks are already on disk, unreferenced,
# so it skips writing them), announces itself and dawdles before publishing.
DAWDLER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    mode, store_dir, src, name, marker = sys.argv[1:6]
    if mode == "no-fcntl":
        sys.modules["fcntl"] = None  # `import fcntl` raises ImportError, as on Windows
    from pbkit.store import Store
    if mode == "no-lock":  # the control: what happens without gc/ingest exclusion
        import contextlib
        Store._lock = lambda self, exclusive: contextlib.nullcontext()
    seen = 0
    def progress(phase, done, total):
        global seen
        if phase == "hash":
            seen += 1
            if seen == 2:
                Path(marker).write_text(str(time.time()))
                time.sleep(2.5)
    with Store.open(store_dir) as s:
        s.ingest(src, name=name, progress=progress)
    print(time.time())
    """
)
GC = textwrap.dedent(
    """
    import sys, time
    mode, store_dir = sys.argv[1:3]
    if mode == "no-fcntl":
        sys.modules["fcntl"] = None
    from pbkit.store import Store
    if mode == "no-lock":
        import contextlib
        Store._lock = lambda self, exclusive: contextlib.nullcontext()
    with Store.open(store_dir) as s:
        r = s.gc()
    print(time.time(), r.removed_objects)
    """
)


@pytest.mark.parametrize("mode", ["no-fcntl", "no-lock"])
def test_gc_during_ingest_keeps_the_objects_it_will_reference(bundled_dir, tmp_path, mode):
    store_dir = tmp_path / "store"
    with Store.open(store_dir) as s:
        s.ingest(bundled_dir, name="minilm")
        s.remove("minilm")  # every object is now on disk but unreferenced: gc's to delete
    marker = tmp_path / "marker"
    ingest = subprocess.Popen(
        [PYTHON, "-c", DAWDLER, mode, str(store_dir), str(bundled_dir), "minilm", str(marker)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not marker.exists() and ingest.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert marker.exists(), ingest.communicate()[1]
    gc = subprocess.run(
        [PYTHON, "-c", GC, mode, str(store_dir)], env=_env(), capture_output=True, text=True, timeout=120
    )
    out, err = ingest.communicate(timeout=120)
    assert ingest.returncode == 0 and gc.returncode == 0, err + gc.stderr
    published_at = float(out.split()[-1])
    gc_done_at, removed = float(gc.stdout.split()[0]), int(gc.stdout.split()[1])
    with Store.open(store_dir) as s:
        v = s.verify()
        if mode == "no-lock":
            # gc ran while the ingest dawdled and deleted what it had skipped: the bug the lock prevents
            assert gc_done_at < published_at and removed > 0
            assert not v.ok and v.missing, v.to_dict()
            return
        assert gc_done_at > published_at  # gc waited for the ingest to publish
        assert removed == 0
        assert v.ok and v.unreferenced_objects == 0, v.problems
        s.assemble("minilm", tmp_path / "out")
    assert sha256_tree(tmp_path / "out") == sha256_tree(bundled_dir)
