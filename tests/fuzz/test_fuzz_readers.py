"""Hypothesis fuzzing of the four readers of user files, starting from real inputs (the bundled
MiniLM safetensors header, real recipes and a real exported library from the demo zoo, the
project's own YAML/TOML settings files), with a fixed seed (derandomize=True) so every run
generates the same 10 100 inputs. The only exception a reader may raise is a PbkitError with a
one-line message, and no input may take over 5 s of its thread's CPU (fuzz_harness.TIME_LIMIT_S)."""

from __future__ import annotations

import struct

import fuzz_harness as H
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import byte_mutants, json_mutants, mutants

COMMON = dict(
    derandomize=True,  # the same inputs on every run: a failure reproduces, CI is stable
    deadline=None,  # the per-input bound is fuzz_harness.TIME_LIMIT_S, asserted in the harness
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)
N_SAFETENSORS, N_RECIPE, N_LIBRARY, N_SETTINGS = 2500, 2000, 2000, 3600  # 10 100 in all

HEADER = H.MINILM_HEADER.read_bytes()
HEADER_JSON = HEADER[8:].rstrip(b" ")
SIZE_DELTAS = st.sampled_from([0, 0, 0, 0, -1, 1, -2, 8, -4096, 4096, -H.MINILM_DATA_BYTES, 2**40])


@st.composite
def safetensors_files(draw) -> tuple[bytes, int]:
    """(header bytes, file size): the real header mutated three ways, over a sparse data section."""
    how = draw(st.sampled_from(["bytes", "json", "json", "length"]))
    if how == "bytes":  # anywhere, the length prefix included
        head = draw(byte_mutants(HEADER))
        data_start = len(HEADER)
    elif how == "json":  # a structurally edited header with a correct (or padded) length prefix
        text = draw(json_mutants(HEADER_JSON))
        text += b" " * draw(st.sampled_from([0, -len(text) % 8]))
        head = struct.pack("<Q", len(text)) + text
        data_start = len(head)
    else:  # the real text with a lying length prefix
        n = draw(
            st.sampled_from(
                [0, 1, 7, len(HEADER) - 9, len(HEADER) - 7, 2**31, 2**63, 2**64 - 1, 100_000_000, 100_000_001]
            )
            | st.integers(0, 2**64 - 1)
        )
        head = struct.pack("<Q", n) + HEADER[8:]
        data_start = len(HEADER)
    return head, max(0, data_start + H.MINILM_DATA_BYTES + draw(SIZE_DELTAS))


def test_fuzz_safetensors_reader(tmp_path):
    seen = {"n": 0, "accepted": 0}
    path = tmp_path / "model.safetensors"

    @settings(max_examples=N_SAFETENSORS, **COMMON)
    @given(safetensors_files())
    def run(case):
        head, size = case
        seen["n"] += 1
        seen["accepted"] += H.check_safetensors(path, head, size)

    run()
    assert seen["n"] >= N_SAFETENSORS
    assert 0 < seen["accepted"] < seen["n"], seen  # mutants that stay valid are read, not just rejected
    assert H.check_safetensors(path, HEADER, len(HEADER) + H.MINILM_DATA_BYTES)  # the unmutated file


@pytest.mark.parametrize("which", [0, 1])
def test_fuzz_recipe_parser(which):
    real = H.RECIPES[which].read_bytes()
    seen = {"n": 0, "accepted": 0}

    @settings(max_examples=N_RECIPE // 2, **COMMON)
    @given(mutants(real))
    def run(data):
        seen["n"] += 1
        seen["accepted"] += H.check_recipe(data)

    run()
    assert seen["n"] >= N_RECIPE // 2
    assert 0 < seen["accepted"] < seen["n"], seen
    assert H.check_recipe(real)


def test_fuzz_library_loader(tmp_path):
    real = H.LIBRARY.read_bytes()
    path = tmp_path / "lib.json"
    seen = {"n": 0, "accepted": 0}

    @settings(max_examples=N_LIBRARY, **COMMON)
    @given(mutants(real))
    def run(data):
        seen["n"] += 1
        seen["accepted"] += H.check_library(path, data)

    run()
    assert seen["n"] >= N_LIBRARY
    assert 0 < seen["accepted"] < seen["n"], seen
    assert H.check_library(path, real)


@pytest.mark.parametrize("src", H.SETTINGS, ids=[f"{p.parent.name}/{p.name}" for p in H.SETTINGS])
def test_fuzz_settings_reader(src, tmp_path):
    real = src.read_bytes()
    n = N_SETTINGS // len(H.SETTINGS) + 1
    seen = {"n": 0, "accepted": 0}
    # The same bytes are also read under the other two suffixes (a YAML file named .json, ...).
    suffixes = st.sampled_from([src.suffix, src.suffix, ".yaml", ".json", ".toml"])

    @settings(max_examples=n, **COMMON)
    @given(byte_mutants(real), suffixes)
    def run(data, suffix):
        seen["n"] += 1
        seen["accepted"] += H.check_settings(tmp_path / f"settings{suffix}", data)

    run()
    assert seen["n"] >= n
    assert 0 < seen["accepted"] < seen["n"], seen
    assert H.check_settings(tmp_path / f"real{src.suffix}", real)
