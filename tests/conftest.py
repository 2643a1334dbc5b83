"""Set-up shared by every test: third-party progress bars off, the policy registry restored after
each test. Helper modules of a test area (store_helpers, zoo_helpers, mutations, fuzz_harness)
are importable through pytest's `pythonpath` option in pyproject.toml, not sys.path edits."""

from __future__ import annotations

import os

import pytest

# huggingface_hub's switch, read by transformers at import: its "Loading weights" bars go too.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(autouse=True)
def _policy_registry_restored():
    """A policy a test registers (`register_policy`, `register_checkpoint`) is gone after it."""
    try:
        from delivery import registry as policy_registry
    except ImportError:  # without the [sim] extra there is no registry to leak
        yield
        return
    registry = policy_registry._REGISTERED
    before = dict(registry)
    yield
    registry.clear()
    registry.update(before)
