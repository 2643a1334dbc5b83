"""The store keeps its data safe: handed-out blocks are copies, `rm` keeps bases of stored models,
`verify` names a model whose base is gone, `need` counts what a device must hold to run a model."""

from __future__ import annotations

import json
import os

import pytest
import torch
from store_helpers import run_cli, small_model, toy_tensors

from pbkit.store import ModelInUseError


@pytest.fixture
def with_adapter(store, tmp_path):
    """base, adapter (on base), adapter2 (on adapter's base: a sibling), ft (partial fine-tune of base)."""
    base = small_model(tmp_path / "base", toy_tensors(0))
    store.ingest(base, name="base")
    for name, seed in (("lora", 1), ("lora2", 2)):
        g = torch.Generator().manual_seed(seed)
        src = small_model(
            tmp_path / name,
            {"base_model.model.layer0.lora_A.weight": torch.randn(4, 64, generator=g)},
            filename="adapter_model.safetensors",
        )
        (src / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x/y"}))
        assert store.ingest(src, name=name, base="base").kind == "adapter"
    return store


def test_copy_out_never_shares_an_inode(with_adapter, tmp_path):
    store = with_adapter
    bid = next(iter(store.recipe("base").blocks()))
    dst = tmp_path / "handed-out"
    store.objects.copy_out(bid, dst)
    assert os.stat(dst).st_ino != os.stat(store.objects.path(bid)).st_ino
    with open(dst, "r+b") as f:  # a user writing into the block they received
        f.write(b"\xff\xff\xff\xff")
    assert store.verify().ok
    with pytest.raises(FileExistsError):
        store.objects.copy_out(bid, dst)


def test_rm_refuses_a_base_in_use_and_cascades(with_adapter, capsys):
    store = with_adapter
    with pytest.raises(ModelInUseError, match="'base' is the base of lora, lora2.*--cascade"):
        store.remove("base")
    assert store.list_models() == ["base", "lora", "lora2"]
    code, out, err = run_cli(capsys, "--store", store.root, "rm", "base")
    assert code == 2 and err.count("\n") == 1 and "lora, lora2" in err
    code, out, err = run_cli(capsys, "--store", store.root, "rm", "base", "--cascade", "--json")
    assert code == 0, err
    assert json.loads(out)["removed_dependants"] == ["lora", "lora2"]
    assert store.list_models() == [] and store.verify().ok


def test_verify_names_a_model_whose_base_is_missing(with_adapter, capsys):
    store = with_adapter
    with store.index.transaction() as db:  # what an older pbkit's `rm base` left behind
        db.execute("DELETE FROM refs WHERE model='base'")
        db.execute("DELETE FROM files WHERE model='base'")
        db.execute("DELETE FROM models WHERE name='base'")
    report = store.verify()
    assert not report.ok and report.missing_bases == ["lora -> base", "lora2 -> base"]
    assert any("'lora': its base 'base' is missing" in p for p in report.problems)
    code, out, err = run_cli(capsys, "--store", store.root, "verify")
    assert code == 1 and "models without their base: lora -> base, lora2 -> base" in err


def test_need_counts_the_base_of_an_adapter(with_adapter, capsys):
    store = with_adapter
    own = store.recipe("lora").block_bytes()
    base = store.recipe("base").block_bytes()
    shared = sum(b.nbytes for bid, b in store.recipe("lora").blocks().items() if bid in store.model_blocks("base"))
    full = store.need("lora", set())
    assert full.extra["chain"] == ["lora", "base"] and full.total_bytes == own + base - shared
    code, out, _ = run_cli(capsys, "--store", store.root, "need", "lora", "--have", "base", "--json")
    d = json.loads(out)
    assert code == 0 and d["needed_bytes"] == own - shared and d["needed_bytes"] + d["have_bytes"] == d["total_bytes"]
    assert {"model", "needed_blocks", "needed_bytes", "have_bytes", "total_blocks", "total_bytes", "needed"} <= set(d)
    # a partial fine-tune holds all of its weights: its base is not part of what it needs
    assert store.need("base", set()).extra["chain"] == ["base"]
