"""Delta blocks in the store: every delta-coded dtype and a chain (a fine-tune of a fine-tune)
round-trip through ingest, assembly (from the store and from received blocks), need, rm and gc;
a missing reference is one error naming both blocks; corrupt deltas and references are caught;
stores and recipes without deltas are unchanged (recipe version 1)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from store_helpers import run_cli, save_st, sha256_tree

from pbkit.store import Store
from pbkit.store.assemble import AssemblyError
from pbkit.store.recipe import Recipe
from pbkit.store.references import DeltaPolicy, DeltaPolicyError, name_keys

DELTA = DeltaPolicy()


def _model(root, tensors):
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "toy"}))
    save_st(root / "model.safetensors", tensors, metadata={"format": "pt"})
    return root


def _base_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "enc.f32.weight": torch.randn(64, 64, generator=g),
        "enc.f16.weight": torch.randn(64, 64, generator=g).half(),
        "enc.bf16.weight": torch.randn(64, 64, generator=g).bfloat16(),
        "enc.f64.weight": torch.randn(32, 32, generator=g).double(),
        "enc.i8.weight": torch.randint(-100, 100, (64, 64), generator=g, dtype=torch.int8),
        "enc.frozen.weight": torch.randn(64, 64, generator=g),
    }


def _finetune(tensors, seed, prefix="", skip=("enc.frozen.weight",)):
    """A full fine-tune: every tensor nudged (as a few optimiser steps do), names maybe prefixed."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in tensors.items():
        if k in skip:
            out[prefix + k] = v.clone()
        elif v.dtype == torch.int8:
            out[prefix + k] = v ^ torch.randint(0, 2, v.shape, generator=g, dtype=torch.int8)
        else:
            out[prefix + k] = (v.double() * (1 + 1e-3 * torch.randn(v.shape, generator=g, dtype=torch.float64))).to(
                v.dtype
            )
    return out


@pytest.fixture
def family(tmp_path):
    """base A, fine-tune B of A (names prefixed `model.`), fine-tune C of B."""
    a = _base_tensors()
    b = _finetune(a, 1, prefix="model.")
    c = _finetune(b, 2, skip=("model.enc.frozen.weight",))
    return {
        "A": _model(tmp_path / "A", a),
        "B": _model(tmp_path / "B", b),
        "C": _model(tmp_path / "C", c),
    }


def _ingest_family(store, family):
    store.ingest(family["A"], name="A")
    rb = store.ingest(family["B"], name="B", base="A", delta=DELTA)
    rc = store.ingest(family["C"], name="C", base="B", delta=DELTA)
    return rb, rc


def test_every_dtype_and_a_chain_round_trip(store, family, tmp_path):
    rb, rc = _ingest_family(store, family)
    recipe_b = store.recipe("B")
    deltas = {t.name: t for f in recipe_b.files for t in f.tensors}
    for dtype in ("f32", "f16", "bf16", "f64"):  # found by name across the `model.` prefix
        assert len(deltas[f"model.enc.{dtype}.weight"].delta) == 1
    assert not deltas["model.enc.i8.weight"].delta  # other dtypes: stored exactly
    assert rb.delta_tensors == 4 and rb.delta_new_bytes < 0.9 * rb.delta_tensor_bytes
    chains = {t.name: t.delta for f in store.recipe("C").files for t in f.tensors}
    assert len(chains["model.enc.f32.weight"]) == 2  # C -> B -> A
    # a frozen tensor equal to A's is shared exactly, not re-coded
    assert not chains["model.enc.frozen.weight"]
    for name in "ABC":
        out = tmp_path / f"out-{name}"
        store.assemble(name, out)
        assert sha256_tree(out) == sha256_tree(family[name])
    assert store.verify().ok
    table = {r["name"]: r for r in store.dedup_table()}
    assert table["A"]["delta_bytes"] == 0 and 0 < table["B"]["delta_bytes"] == rb.delta_new_bytes
    assert store.stats()["delta_bytes"] == rb.delta_new_bytes + rc.delta_new_bytes
    assert json.loads(store.index.recipe_json("C"))["version"] == 2
    assert json.loads(store.index.recipe_json("A"))["version"] == 1  # no deltas: unchanged format


def test_need_a_device_holding_the_base_needs_only_the_deltas(store, family):
    _ingest_family(store, family)
    have = store.model_blocks("B")
    report = store.need("C", have)
    kinds = {b.kind for b in report.needed}
    c_tensors = {t.pb: t for f in store.recipe("C").files for t in f.tensors}
    own_deltas = {t.delta[0].block for t in c_tensors.values() if t.delta}
    assert own_deltas <= {b.id for b in report.needed}
    assert kinds <= {"delta", "tensor", "header", "blob"}
    # nothing of B's chain (its deltas, A's roots) is asked for again
    assert not ({b.id for b in report.needed} & have)
    empty = store.need("C", set())
    assert report.needed_bytes < 0.6 * empty.needed_bytes
    # with nothing held, the whole chain is needed: C's deltas, B's deltas and A's roots
    roots = {t.delta[-1].ref for t in c_tensors.values() if t.delta}
    assert roots <= {b.id for b in empty.needed}


def test_rm_and_gc_keep_references_a_delta_needs(store, family, tmp_path):
    from pbkit.store.facade import ModelInUseError

    _ingest_family(store, family)
    with pytest.raises(ModelInUseError):  # `rm` refuses a base while models are built on it
        store.remove("A")
    # forget A and B below the facade (as `rm --cascade` of an older layout, or a store edited
    # by hand would): what C's deltas need is still in C's own references, so gc keeps it
    store.index.remove("A")
    store.index.remove("B")
    gc = store.gc()
    assert gc.removed_objects > 0  # B's and A's own blocks that C does not need
    out = tmp_path / "out"
    store.assemble("C", out)
    assert sha256_tree(out) == sha256_tree(family["C"])
    v = store.verify()
    assert not v.corrupt and not v.missing and v.missing_bases == ["C -> B"]  # blocks intact, base gone
    # assembly from a directory of received blocks (exactly C's stored blocks) works too
    blocks = tmp_path / "received"
    blocks.mkdir()
    for bid in store.recipe("C").blocks():
        shutil.copy(store.objects.path(bid), blocks / f"{bid}.pb")
    out2 = tmp_path / "out2"
    store.assemble("C", out2, from_blocks=blocks)
    assert sha256_tree(out2) == sha256_tree(family["C"])


def test_missing_reference_is_one_error_naming_both_blocks(store, family, tmp_path):
    _ingest_family(store, family)
    t = next(t for f in store.recipe("B").files for t in f.tensors if t.name == "model.enc.f32.weight")
    root, link = t.delta[-1].ref, t.delta[0].block
    store.objects.path(root).unlink()
    out = tmp_path / "out"
    with pytest.raises(AssemblyError) as err:
        store.assemble("B", out)
    msg = str(err.value)
    assert root[:16] in msg and link[:16] in msg and "missing" in msg
    assert not out.exists() and not list(tmp_path.glob(".out.pbkit-tmp-*"))  # nothing half-written


@pytest.mark.parametrize("which", ["delta", "reference"])
def test_corrupt_delta_or_reference_is_caught_by_the_id_check(store, family, tmp_path, which):
    _ingest_family(store, family)
    t = next(t for f in store.recipe("B").files for t in f.tensors if t.name == "model.enc.bf16.weight")
    bad = t.delta[0].block if which == "delta" else t.delta[-1].ref
    path = store.objects.path(bad)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(AssemblyError, match=f"{bad[:16]} corrupt"):
        store.assemble("B", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    report = store.verify()
    assert bad in report.corrupt and "B" in report.models_hit


def test_threshold_and_unrelated_tensors_stay_exact(store, tmp_path):
    a = _model(tmp_path / "A", _base_tensors())
    b = _model(tmp_path / "B", _finetune(_base_tensors(), 1))
    store.ingest(a, name="A")
    r = store.ingest(b, name="B", base="A", delta=DeltaPolicy(min_saving=0.99))
    assert r.delta_tensors == 0 and not store.recipe("B").has_deltas
    g = torch.Generator().manual_seed(9)
    unrelated = {  # random bit patterns: no byte plane of their XOR compresses
        k: torch.randint(0, 256, (v.numel() * v.element_size(),), generator=g, dtype=torch.uint8)
        .view(v.dtype)
        .view(v.shape)
        for k, v in _base_tensors().items()
        if v.is_floating_point()
    }
    r = store.ingest(_model(tmp_path / "U", unrelated), name="U", base="A", delta=DELTA)
    assert r.delta_tensors == 0  # random bytes: a delta would save nothing


def test_reingest_is_unchanged_and_writes_nothing(store, family):
    rb, _ = _ingest_family(store, family)
    again = store.ingest(family["B"], name="B", base="A", delta=DELTA)
    assert again.unchanged and again.new_objects == 0 and again.recipe_id == rb.recipe_id


def test_recipes_without_deltas_keep_version_1_and_old_readers_refuse_v2(store, family):
    store.ingest(family["A"], name="A")
    store.ingest(family["B"], name="B", base="A")  # no --delta: as before
    text = store.index.recipe_json("B")
    assert json.loads(text)["version"] == 1 and '"delta"' not in text
    assert Recipe.from_json(text).id == store.index.model("B").recipe_id


def test_policy_and_name_keys():
    with pytest.raises(DeltaPolicyError):
        DeltaPolicy(min_saving=1.5)
    assert name_keys("bert.encoder.layer.0.w") == ["bert.encoder.layer.0.w", "encoder.layer.0.w", "layer.0.w"]
    assert name_keys("0.weight") == ["0.weight"]


def test_cli_ingest_delta(capsys, store_dir, family):
    code, _, err = run_cli(capsys, "--store", store_dir, "ingest", family["A"], "--name", "A")
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "--store", store_dir, "ingest", family["B"], "--name", "B", "--base", "A", "--delta"
    )
    assert code == 0, err
    assert "stored as deltas" in out
    code, _, err = run_cli(
        capsys, "--store", store_dir, "ingest", family["C"], "--base", "B", "--delta", "--delta-min-saving", "1.5"
    )
    assert code == 2 and "pbkit: error:" in err and "1.5" in err
    with Store.open(store_dir) as s:
        assert s.list_models() == ["A", "B"]


@pytest.mark.parametrize("granularity", ["tensor", "layer", "fixed"])
def test_library_export_carries_references_and_closes_demand_sets(store, family, granularity):
    from pbkit.library import PBLibrary
    from pbkit.library.export import export_library

    _ingest_family(store, family)
    lib = export_library(store, granularity=granularity, max_bytes=8192 if granularity == "fixed" else None)
    by_id = {p.id: p for p in lib.pbs}
    deltas = [p for p in lib.pbs if p.references]
    assert deltas
    pbs = {m.name: set(m.pbs) for m in lib.models}
    for m in lib.models:  # closed under references (PBLibrary.validate checks it too)
        for p in m.pbs:
            assert set(by_id[p].references) <= pbs[m.name]
    # C's demand reaches A's exactly stored tensors through B's deltas; A needs no delta PB
    assert not any(by_id[p].references for p in pbs["A"])
    if granularity == "tensor":  # the roots of C's chains are A's tensor PBs
        roots = {t.delta[-1].ref for f in store.recipe("C").files for t in f.tensors if t.delta}
        assert roots and roots <= pbs["C"] & pbs["A"]
    c_only = sum(by_id[p].bytes for p in pbs["C"] - pbs["B"])
    assert c_only < 0.6 * sum(by_id[p].bytes for p in pbs["A"])  # C's own PBs are small deltas
    d = lib.to_dict()
    assert d["version"] == 2
    back = PBLibrary.from_dict(d)
    assert {p.id: p.references for p in back.pbs} == {p.id: p.references for p in lib.pbs}
