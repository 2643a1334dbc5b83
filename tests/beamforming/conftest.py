"""Beamforming tests: keep BLAS (and torch, if another suite loaded it) to one thread."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Clarabel runs single-threaded by its own setting; BLAS is capped when threadpoolctl is
    # present (it is not a project dependency, so its absence is fine: the matrices are tiny).
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(limits=1)
    with limit:
        yield


def rayleigh(rng: np.random.Generator, k: int, n: int, l: int, spread_db: float = 20.0) -> np.ndarray:
    """Channels of path-loss scale (~1e-5 amplitude) with per-link gains spread over spread_db."""
    loss_db = 100.0 + rng.uniform(0.0, spread_db, (k, n, 1))
    beta = 10.0 ** (-loss_db / 10.0)
    return np.sqrt(beta / 2.0) * (rng.standard_normal((k, n, l)) + 1j * rng.standard_normal((k, n, l)))


NOISE = 10.0 ** ((-174.0 + 80.0 + 9.0 - 30.0) / 10.0)  # W: -174 dBm/Hz, 100 MHz, NF 9 dB
