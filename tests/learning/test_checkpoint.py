"""Learner checkpoints (learning.checkpoint): written whole, with the umask's modes, read back."""

from __future__ import annotations

import os
import stat

import numpy as np

from learning.checkpoint import load_state, save_state


def test_a_learner_checkpoint_gets_the_umask_modes(tmp_path):
    old = os.umask(0o022)
    try:
        run = save_state(tmp_path / "run", {"step": 3, "w": np.arange(4, dtype=np.float32)}, "checkpoint")
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()} == {0o644}
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    back = load_state(run, "checkpoint")
    assert back["step"] == 3 and np.array_equal(back["w"], np.arange(4, dtype=np.float32))
