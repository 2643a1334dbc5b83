"""A small zoo built for real (tiny GPT-2 and Llama families, a few optimiser steps): reuse,
determinism, and the PB library exported from its store."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from zoo_helpers import SMALL_SPEC, small_spec

from pbkit.cli import main as cli_main
from pbkit.library import load_library
from pbkit.library.export import ExportError, export_library
from pbkit.model.digest import file_sha256
from pbkit.store import Store
from pbkit.zoo.builder import build_zoo, read_manifest

WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")


def test_build_trains_saves_and_ingests(built_zoo):
    zoo, store_dir, result = built_zoo
    names = [m.name for m in result.models]
    assert names == small_spec().model_names()
    assert {m.status for m in result.models} == {"built"}
    with Store.open(store_dir) as store:
        assert sorted(store.list_models()) == sorted(names)
        kinds = {n: store.recipe(n).kind for n in names}
    assert kinds["gpt-base"] == "base" and kinds["gpt-lora-r4"] == "adapter"
    assert kinds["gpt-k2"] == "partial-finetune" and kinds["gpt-full"] == "full-finetune"
    assert (zoo / "gpt-ia3" / "adapter_config.json").is_file()
    manifest = read_manifest(zoo)
    assert manifest["llama-lora-save"]["family"] == "llama" and manifest["llama-lora-save"]["base"] == "llama-base"
    # dtype: the fp16 release really is fp16
    with safe_open(str(zoo / "llama-k1-fp16" / "model.safetensors"), "pt") as fh:
        assert {str(fh.get_slice(k).get_dtype()) for k in fh.keys()} == {"F16"}
    cfg = json.loads((zoo / "llama-lora-save" / "adapter_config.json").read_text())
    assert cfg["modules_to_save"] and "lm_head" in cfg["modules_to_save"]


def test_rebuild_reuses_and_rebuilds_only_what_changed(built_copy):
    zoo, store_dir = built_copy
    with Store.open(store_dir) as store:
        again = build_zoo(small_spec(), zoo, store)
        assert {m.status for m in again.models} == {"reused"}
        store.remove("gpt-ia3")  # store entry gone, directory still there: ingest only
        # The copied zoo lives elsewhere, so re-ingesting the base gives a new recipe (its
        # source path changed) and its children are re-ingested to pin the new base.
        store.remove("llama-base", cascade=True)  # its children go too; the build re-ingests them
        spec = small_spec()
        spec_data = json.loads(json.dumps(SMALL_SPEC))
        spec_data["families"][0]["finetunes"][1]["steps"] = 3  # gpt-k2 changes
        from pbkit.zoo.spec import parse_spec

        changed = build_zoo(parse_spec(spec_data), zoo, store)
        status = {m.name: m.status for m in changed.models}
        assert store.recipe("llama-lora-save").base.recipe_id == store.recipe("llama-base").id
    assert status.pop("gpt-k2") == "built"
    assert status.pop("gpt-ia3") == "ingested"
    assert [status.pop(n) for n in ("llama-base", "llama-k1-fp16", "llama-lora-save")] == ["ingested"] * 3
    assert set(status.values()) == {"reused"}
    assert spec.model_names() == [m.name for m in changed.models]


def test_build_is_deterministic(built_zoo, tmp_path):
    zoo, _, _ = built_zoo
    only = {"gpt-k2", "gpt-lora-r4", "llama-k1-fp16"}
    with Store.open(tmp_path / "store") as store:
        result = build_zoo(small_spec(), tmp_path / "zoo", store, only=only)
    assert {m.name for m in result.models} == only | {"gpt-base", "llama-base"}
    for m in result.models:
        for fname in WEIGHT_FILES:
            if (zoo / m.name / fname).is_file():
                assert file_sha256(tmp_path / "zoo" / m.name / fname) == file_sha256(zoo / m.name / fname), m.name


@pytest.fixture(scope="module")
def libraries(built_zoo):
    _, store_dir, _ = built_zoo
    with Store.open(store_dir) as store:
        recipes = {n: store.recipe(n) for n in store.list_models()}
        libs = {
            "tensor": export_library(store, "tensor", files="each"),
            "layer": export_library(store, "layer"),
            "fixed": export_library(store, "fixed", max_bytes=50_000, files="none"),
        }
    return libs, recipes


def test_tensor_library_matches_the_store(libraries):
    libs, recipes = libraries
    lib = libs["tensor"]
    models = {m.name: m for m in lib.models}
    sizes = dict(zip(lib.pb_ids, lib.pb_sizes().tolist()))
    for name, r in recipes.items():
        m = models[name]
        assert m.id == r.id and m.kind == r.kind
        own = r.blocks()
        if r.kind == "adapter":
            # base + adapter: every base block is in the adapter's list, followed by its own
            base = recipes[m.base]
            assert m.base == name.split("-")[0] + "-base"
            assert set(m.pbs) == set(base.blocks()) | set(own)
            assert list(m.pbs[: len(models[m.base].pbs)]) == list(models[m.base].pbs)
        else:
            assert set(m.pbs) == set(own)
            assert sum(sizes[p] for p in m.pbs) == r.block_bytes()
    # frozen blocks really are shared: k2 shares more weight bytes with its base than full does
    base = set(models["gpt-base"].pbs)
    shared = {n: sum(sizes[p] for p in set(models[n].pbs) & base) for n in ("gpt-full", "gpt-k2", "gpt-cls-k3")}
    assert shared["gpt-full"] < shared["gpt-k2"] < shared["gpt-cls-k3"]


def test_layer_and_fixed_granularity(libraries):
    libs, _ = libraries
    lib = libs["layer"]
    models = {m.name: m for m in lib.models}
    labels = {p.id: p.label for p in lib.pbs}
    common = set(models["gpt-base"].pbs) & set(models["gpt-k2"].pbs)
    # frozen blocks 0 and 1 and the embeddings are shared whole; block 3 was trained
    assert {labels[p] for p in common} >= {"block:transformer.h.0", "block:transformer.h.1", "embeddings"}
    assert not any(labels[p] == "block:transformer.h.3" for p in common)
    assert sum(1 for p in models["gpt-k2"].pbs if labels[p].startswith("files:")) == 1
    fixed = libs["fixed"]
    assert max(fixed.pb_sizes()) <= 50_000
    assert not any(p.label.startswith(("files:", "header:", "file:")) for p in fixed.pbs)
    # coarser groups can only lose sharing: a group mixing a frozen and a trained tensor is new
    tensor = libs["tensor"]
    weights = lambda L: sum(p.bytes for p in L.pbs if not p.label.startswith(("files:", "header:", "file:")))
    assert weights(fixed) >= weights(tensor) and weights(lib) >= weights(tensor)


def test_cli_export_roundtrip(built_zoo, tmp_path, capsys):
    _, store_dir, _ = built_zoo
    out = tmp_path / "lib.json"
    assert (
        cli_main(
            ["--store", str(store_dir), "library", "export", "--granularity", "layer", "--out", str(out), "--json"]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert data["format"] == "pbkit-pb-library" and data["version"] == 1 and data["synthetic"] is False
    assert data["source"]["kind"] == "store" and data["granularity"] == "layer"
    for m in data["models"]:
        assert {"name", "id", "kind", "base", "pbs", "bytes"} <= set(m)
    lib = load_library(out)
    assert lib.sharing()["unique_bytes"] == printed["unique_bytes"]
    assert cli_main(["--store", str(store_dir), "library", "export", "--granularity", "fixed", "--out", str(out)]) == 2
    assert "--granularity fixed needs --max-bytes" in capsys.readouterr().err
    assert cli_main(["--store", str(store_dir), "library", "export", "--model", "nope", "--out", str(out)]) == 2
    assert "model nope is not in the store" in capsys.readouterr().err


def test_export_subset_pulls_in_bases(built_zoo, tmp_path):
    _, store_dir, _ = built_zoo
    with Store.open(store_dir) as store:
        lib = export_library(store, models=["llama-lora-save"])
        assert lib.model_names == ["llama-base", "llama-lora-save"]
        with pytest.raises(ExportError, match="files mode 'all'"):
            export_library(store, files="all")
    with Store.open(tmp_path / "empty") as empty, pytest.raises(ExportError, match="store is empty"):
        export_library(empty)


def test_path_and_hub_bases(tmp_path, monkeypatch):
    from pbkit.errors import PbkitError
    from pbkit.zoo.finetune import build_tiny_model
    from pbkit.zoo.spec import parse_spec

    base = build_tiny_model("llama", tmp_path / "mybase", seed=3)
    data = {
        "families": [
            {
                "name": "own",
                "base": {"path": str(base)},
                "adapters": [
                    {
                        "name": "a",
                        "r": 2,
                        "target_modules": ["q_proj"],
                        "task": "lm",
                        "steps": 1,
                        "batch_size": 2,
                        "seq_len": 8,
                    }
                ],
            }
        ]
    }
    with Store.open(tmp_path / "store") as store:
        first = build_zoo(parse_spec(data), tmp_path / "zoo", store)
        assert [m.status for m in first.models] == ["built", "built"]
        assert file_sha256(tmp_path / "zoo" / "own-base" / "model.safetensors") == file_sha256(
            base / "model.safetensors"
        )
        # the base's content changed: the family is rebuilt
        (base / "generation_config.json").write_text("{}")
        second = build_zoo(parse_spec(data), tmp_path / "zoo", store)
        assert [m.status for m in second.models] == ["built", "built"]
        assert store.recipe("own-a").base.recipe_id == store.recipe("own-base").id
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        hub = {"families": [{"name": "hub", "base": {"hub": "nobody/not-cached-model", "revision": "main"}}]}
        with pytest.raises(PbkitError, match="nobody/not-cached-model: .*no cached snapshot"):
            build_zoo(parse_spec(hub), tmp_path / "zoo", store)
    assert not (tmp_path / "zoo" / "hub-base").exists()


def test_cli_build_json_and_adapter_without_base(built_zoo, tmp_path, capsys):
    spec = tmp_path / "one.yaml"
    spec.write_text(
        "name: one\nfamilies:\n  - name: g\n    base: {tiny: gpt2, seed: 1}\n"
        "    adapters:\n      - {name: ia3, type: ia3, task: lm, steps: 1, batch_size: 2, seq_len: 8}\n"
    )
    argv = ["--store", str(tmp_path / "store"), "zoo", "build", str(spec), "--out", str(tmp_path / "zoo"), "--json"]
    assert cli_main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["status"]) for m in first["models"]] == [("g-base", "built"), ("g-ia3", "built")]
    assert cli_main(argv) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"reused": 2}

    # An adapter stored without its base keeps only its own PBs, and the library says so.
    zoo, _, _ = built_zoo
    with Store.open(tmp_path / "alone") as store, pytest.warns(UserWarning):
        store.ingest(zoo / "gpt-lora-r4", name="lonely")
        lib = export_library(store)
    assert lib.models[0].base is None
    assert any("lonely" in w for w in lib.source["warnings"])


def test_one_build_per_zoo_at_a_time(tmp_path):
    import fcntl

    from pbkit.zoo.builder import ZooBuildError

    (tmp_path / "zoo" / ".zoo").mkdir(parents=True)
    with open(tmp_path / "zoo" / ".zoo" / "lock", "a+") as held, Store.open(tmp_path / "store") as store:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ZooBuildError, match="another `pbkit zoo build` is running"):
            build_zoo(small_spec(), tmp_path / "zoo", store)
