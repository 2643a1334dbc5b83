"""Atomic writes (pbkit.common.fs): whole or nothing, the umask's modes, errors naming the path."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from pbkit.common.fs import atomic_dir, atomic_write_json, atomic_write_text
from pbkit.library import synthetic_library


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_directories_get_the_umask_modes(tmp_path, umask_022):
    f = atomic_write_text(tmp_path / "a" / "b.txt", "hello\n")
    assert f.read_text() == "hello\n" and _mode(f) == 0o644
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "x").write_text("x")
    assert _mode(tmp_path / "d") == 0o755 and (tmp_path / "d" / "x").read_text() == "x"
    os.umask(0o077)
    assert _mode(atomic_write_json(tmp_path / "private.json", {"a": 1})) == 0o600


def test_a_directory_does_not_pass_on_private_files_its_writers_made(tmp_path, umask_022):
    """safetensors' save_file (and so save_pretrained) writes through a private temporary file:
    a zoo model or checkpoint made in atomic_dir must still come out 0644 / 0755."""
    from safetensors.numpy import save_file

    with atomic_dir(tmp_path / "model") as tmp:
        save_file({"w": np.zeros(3, np.float32)}, str(tmp / "model.safetensors"))
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(tmp / "run.sh", 0o700)
    assert _mode(tmp_path / "model" / "model.safetensors") == 0o644
    assert _mode(tmp_path / "model" / "sub") == 0o755 and _mode(tmp_path / "model" / "run.sh") == 0o755


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write_json(tmp_path / "t.json", {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": object()})
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d"):
            raise RuntimeError("half-way")
    assert target.read_text() == '{\n "v": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_a_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as info:
        atomic_write_text(tmp_path / "afile" / "lib.json", "{}")
    assert info.value.filename == str(tmp_path / "afile")
    assert "not a directory" in str(info.value)


def test_a_non_empty_directory_is_replaced_only_when_asked(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(OSError) as info:
        with atomic_dir(out) as tmp:
            (tmp / "new").write_text("new")
    assert info.value.filename == str(out) and (out / "old").exists()
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_saved_library_is_0644(tmp_path, umask_022):
    import numpy as np

    lib = synthetic_library(np.random.default_rng(0), families=1, models_per_family=2)
    assert _mode(lib.save(tmp_path / "lib.json")) == 0o644
