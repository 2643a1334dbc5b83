"""`pbkit pull` of delta-stored models (issue 19) from a real `pbkit serve` on 127.0.0.1: a chain
(fine-tune of a fine-tune) arrives bit-exact with its references; a device holding the base
fetches only the delta blocks."""

from __future__ import annotations

import json

import torch
from net_helpers import Served, run_cli, sha256_tree
from store_helpers import save_st

from pbkit.store import Store
from pbkit.store.references import DeltaPolicy


def _model(root, tensors):
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "toy"}')
    save_st(root / "model.safetensors", tensors, metadata={"format": "pt"})
    return root


def _nudged(tensors, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: v * (1 + 1e-3 * torch.randn(v.shape, generator=g)) for k, v in tensors.items()}


def test_pull_delta_chain(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    a = {f"layer{i}.weight": torch.randn(96, 96, generator=g) for i in range(4)}
    b = _nudged(a, 1)
    c = _nudged(b, 2)
    src = {n: _model(tmp_path / n, t) for n, t in (("A", a), ("B", b), ("C", c))}
    origin_store = tmp_path / "origin"
    with Store.open(origin_store) as s:
        s.ingest(src["A"], name="A")
        s.ingest(src["B"], name="B", base="A", delta=DeltaPolicy())
        s.ingest(src["C"], name="C", base="B", delta=DeltaPolicy())
        assert s.recipe("C").has_deltas
        c_deltas = {b.id: b.nbytes for b in s.recipe("C").blocks().values() if b.kind == "delta"}
        own = {t.delta[0].block for f in s.recipe("C").files for t in f.tensors if t.delta}
    dev = tmp_path / "dev"
    with Served.origin(origin_store) as origin:
        assert run_cli(capsys, "--store", dev, "pull", "B", "--from", origin.url)[0] == 0
        code, out, err = run_cli(
            capsys, "--store", dev, "pull", "C", "--from", origin.url, "--out", tmp_path / "out", "--json"
        )
        assert code == 0, err
        d = json.loads(out)
        # the device holds A and B: only C's own delta blocks (and its small files) travel
        assert d["fetched_bytes"] < sum(t.numel() * 4 for t in c.values()) * 0.9
        assert d["fetched_bytes"] >= sum(c_deltas[b] for b in own)
        assert sha256_tree(tmp_path / "out") == sha256_tree(src["C"])
        # into an empty store: the whole chain (C's and B's deltas, A's roots) arrives
        code, out, err = run_cli(
            capsys,
            "--store",
            tmp_path / "dev2",
            "pull",
            "C",
            "--from",
            origin.url,
            "--out",
            tmp_path / "out2",
            "--json",
        )
        assert code == 0, err
        assert json.loads(out)["registered"] == ["A", "B", "C"]
        assert sha256_tree(tmp_path / "out2") == sha256_tree(src["C"])
    with Store.open(dev, create=False) as s:
        assert s.verify().ok
