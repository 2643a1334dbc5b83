"""Fixtures for the store tests: fresh stores, the bundled model; helpers live in store_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pbkit.store import Store  # noqa: E402
from pbkit.zoo.bundled import bundled_model_dir  # noqa: E402

torch.set_num_threads(1)  # 2 shared cores; these tests are hash- and I/O-bound


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    return bundled_model_dir()


@pytest.fixture
def store_dir(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_dir):
    s = Store.open(store_dir)
    yield s
    s.close()
