"""Fixtures for the zoo tests: a hand-made tiny zoo whose dedup figures are known by
construction, and a small zoo built for real (tiny GPT-2 and Llama families, a few steps)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

torch.set_num_threads(1)  # 2 cores shared with other work
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from zoo_helpers import small_spec  # noqa: E402

from pbkit.store import Store  # noqa: E402
from pbkit.zoo.builder import build_zoo  # noqa: E402


@pytest.fixture(scope="session")
def built_zoo(tmp_path_factory):
    """(zoo dir, store dir, build result) of SMALL_SPEC, built once per session."""
    root = tmp_path_factory.mktemp("built")
    with Store.open(root / "store") as store:
        result = build_zoo(small_spec(), root / "zoo", store)
    return root / "zoo", root / "store", result


@pytest.fixture
def built_copy(built_zoo, tmp_path):
    """A private copy of the built zoo and its store, for tests that change them."""
    zoo, store, _ = built_zoo
    shutil.copytree(zoo, tmp_path / "zoo", symlinks=True)
    shutil.copytree(store, tmp_path / "store", symlinks=True)
    return tmp_path / "zoo", tmp_path / "store"
