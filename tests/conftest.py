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


def _check_result_document(document: dict, kind: str) -> int:
    """Assert `document` is a current `pbkit.<kind>` result document in the one interval shape:
    the schema key, no `ci95` anywhere, and every object with a `half_width` a valid interval
    (lo/hi = mean -/+ half_width, n >= 1). Returns how many intervals it holds."""
    from delivery.interval import KEYS, Interval
    from pbkit.common.schema import check_schema

    check_schema(document, kind, kind)
    found = 0

    def walk(node, path: str) -> None:
        nonlocal found
        if isinstance(node, dict):
            assert not any("ci95" in str(k) for k in node), f"{path}: old interval key in {sorted(node)}"
            if "half_width" in node:
                assert set(KEYS) <= set(node), f"{path}: interval keys {sorted(node)}"
                Interval.from_json(node, path)
                found += 1
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(document, kind)
    return found


@pytest.fixture
def result_document():
    """`check(document, kind)`: assert a JSON result document has the schema key of `kind` and
    every interval in the one shape (docs/result-formats.md); returns the number of intervals."""
    return _check_result_document
