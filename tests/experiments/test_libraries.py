"""Shipped libraries: resolvable by name, deterministic rebuilds, `library describe`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pbkit.library import LibraryError, describe, resolve_library, shipped_library_names
from pbkit.library.shipped import SHIPPED
from pbkit.library.shipped.build import build


def test_every_table_entry_is_shipped():
    assert sorted(SHIPPED) == shipped_library_names()


def test_llama_lora_library_rebuilds_byte_for_byte():
    lib = SHIPPED["llama-2-lora"]
    assert json.loads(lib.path.read_text()) == json.loads(json.dumps(build(lib).to_dict()))


def test_resolve_by_name_path_and_synthetic(tmp_path):
    lib = resolve_library("llama-2-lora")
    assert "llama-2-7b-lora-r8-qv-0" in lib.model_names
    assert lib.source["shipped_name"] == "llama-2-lora"
    # A file of that name in the working directory would win; a path is a path.
    copy = tmp_path / "x.json"
    lib.save(copy)
    assert resolve_library(str(copy)).model_names == lib.model_names
    assert resolve_library("synthetic").synthetic
    with pytest.raises(LibraryError, match="no-such-lib: no such file"):
        resolve_library("no-such-lib")


def test_describe_histogram_accounts_for_every_pb():
    lib = resolve_library("edge-catalogue")
    desc = describe(lib)
    hist = desc["sharing_histogram"]
    assert sum(r["pbs"] for r in hist.values()) == desc["pbs"] == len(lib.pbs)
    assert sum(r["bytes"] for r in hist.values()) == desc["unique_bytes"]
    # logical bytes = sum over degrees of degree x bytes
    assert sum(d * r["bytes"] for d, r in hist.items()) == desc["logical_bytes"]
    assert desc["largest_pb"]["bytes"] == int(lib.pb_sizes().max())
    # the mixed catalogue really mixes families: a 7B base and sub-MB adapters
    kinds = {m["kind"] for m in desc["model_list"]}
    assert {"base", "partial-finetune", "adapter"} <= kinds


def test_describe_cli_json_and_error():
    run = [sys.executable, "-m", "pbkit.cli", "library", "describe"]
    out = subprocess.run(run + ["bert", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["models"] == 19
    bad = subprocess.run(run + ["nope"], capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip().startswith("pbkit: error: nope:")
    assert len(bad.stderr.strip().splitlines()) == 1
