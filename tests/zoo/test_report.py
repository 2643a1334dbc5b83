"""The dedup report's arithmetic on a hand-made zoo whose answers are known by construction,
and the same figures read back from a real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pbkit.cli import main as cli_main
from pbkit.model.safetensors_layout import read_layout
from pbkit.store import Store
from pbkit.zoo.report import dedup_report, write_report
from pbkit.zoo.scan import scan_dirs, scan_store, scan_zoo


def _header(path: Path) -> int:
    return len(read_layout(path).header)


@pytest.fixture(scope="module")
def hand_zoo(tmp_path_factory):
    """Five models:
    a: x (f32 128x128), y (f32 16); config A
    b: byte-identical copy of a
    c: x under another name, z (f32 16, new); config A
    d: x cast to f16, plus a random f16 tensor of x's shape (not a cast); config D
    e: x cast to bf16 and y again; config E
    """
    root = tmp_path_factory.mktemp("hand")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 128, generator=g)
    y = torch.randn(16, generator=g)
    z = torch.randn(16, generator=g)
    noise = torch.randn(128, 128, generator=g).half()
    models = {
        "a": ({"x": x, "y": y}, '{"model": "A"}'),
        "c": ({"renamed.x": x, "z": z}, '{"model": "A"}'),
        "d": ({"x16": x.half(), "noise": noise}, '{"model": "D"}'),
        "e": ({"xbf": x.bfloat16(), "y": y}, '{"model": "E", "pad": "........"}'),
    }
    for name, (tensors, config) in models.items():
        (root / name).mkdir()
        save_file(tensors, str(root / name / "model.safetensors"))
        (root / name / "config.json").write_text(config)
    shutil.copytree(root / "a", root / "b")
    return root, {"x": x, "y": y, "z": z, "noise": noise}


def _size(p: Path) -> int:
    return p.stat().st_size


def test_report_arithmetic(hand_zoo):
    root, _ = hand_zoo
    models, source = scan_zoo(root)
    assert [m.name for m in models] == ["a", "b", "c", "d", "e"]
    rep = dedup_report(models, source)
    st = {n: root / n / "model.safetensors" for n in "abcde"}
    cfg = {n: root / n / "config.json" for n in "abcde"}
    logical = sum(_size(st[n]) + _size(cfg[n]) for n in "abcde")
    assert rep.schemes["logical"].unique_bytes == logical

    # whole-file: b duplicates a; c's config equals a's; everything else is distinct.
    file_unique = _size(st["a"]) + _size(cfg["a"]) + _size(st["c"]) + sum(_size(st[n]) + _size(cfg[n]) for n in "de")
    assert rep.schemes["file"].unique_bytes == file_unique
    assert rep.schemes["file"].blocks == 7

    # tensor PBs: x (65536 B) once, y once (a, b, e), z, x16, noise, xbf; every distinct header
    # (a = b; c, d, e differ) and every distinct config.
    tensors = 128 * 128 * 4 + 16 * 4 + 16 * 4 + 128 * 128 * 2 * 3
    headers = sum(_header(st[n]) for n in "acde")
    configs = _size(cfg["a"]) + _size(cfg["d"]) + _size(cfg["e"])
    assert rep.schemes["tensor"].unique_bytes == tensors + headers + configs
    assert rep.schemes["tensor"].blocks == 6 + 4 + 3

    # canonical: x16 and xbf are casts of x (recoverable); `noise` is f16 of the same shape but
    # not a cast of anything.
    assert rep.canonical["recoverable_tensors"] == 2
    assert rep.canonical["by_cast"] == {"F32->BF16": 32768, "F32->F16": 32768}
    assert rep.schemes["canonical"].unique_bytes == tensors + headers + configs - 2 * 32768

    # per model: a's blocks are all shared (b is a copy); d shares nothing.
    rows = {r.name: r for r in rep.models}
    assert rows["a"].own_bytes == 0 and rows["a"].shared_bytes == _size(st["a"]) + _size(cfg["a"])
    assert rows["d"].shared_bytes == 0 and rows["d"].own_bytes == _size(st["d"]) + _size(cfg["d"])
    assert rows["c"].shared_bytes == 128 * 128 * 4 + _size(cfg["c"]) and rows["c"].shared_tensors == 1
    assert rows["e"].shared_bytes == 16 * 4


def test_cdc_dedups_identical_files_and_respects_chunk_bounds(hand_zoo):
    root, _ = hand_zoo
    one, src1 = scan_dirs({"a": root / "a"})
    two, src2 = scan_dirs({"a": root / "a", "b": root / "b"})
    r1, r2 = dedup_report(one, src1), dedup_report(two, src2)
    assert r2.schemes["cdc"].unique_bytes == r1.schemes["cdc"].unique_bytes == r1.schemes["logical"].unique_bytes
    assert r2.cdc["chunks"] == 2 * r1.cdc["chunks"]
    # Smaller chunk parameters still never store more than the logical bytes, and the 66 KB
    # safetensors file is cut into several chunks.
    small = dedup_report(one, src1, cdc_avg=4096, cdc_min=1024, cdc_max=16384)
    assert small.cdc["chunks"] >= 66_000 // 16384 + 1
    assert small.schemes["cdc"].unique_bytes <= small.schemes["logical"].unique_bytes


def test_store_and_zoo_reports_agree(hand_zoo, tmp_path):
    root, _ = hand_zoo
    models, source = scan_zoo(root)
    zoo_rep = dedup_report(models, source)
    with Store.open(tmp_path / "store") as store:
        for n in "abcde":
            store.ingest(root / n, name=n)
        smodels, ssource = scan_store(store)
        store_rep = dedup_report(smodels, ssource)
        stats = store.stats()
    for key, scheme in zoo_rep.schemes.items():
        assert store_rep.schemes[key].unique_bytes == scheme.unique_bytes, key
    # The tensor scheme is what the store keeps.
    assert stats["unique_bytes"] == zoo_rep.schemes["tensor"].unique_bytes


def test_outputs_and_cli(hand_zoo, tmp_path, capsys):
    root, _ = hand_zoo
    models, source = scan_zoo(root)
    paths = write_report(dedup_report(models, source), tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "sharing_heatmap.png", "bytes_per_model.png"]
    for png in paths[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli_main(["report", "--zoo", str(root), "--out", str(tmp_path / "cli"), "--json", "--no-plots"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schemes"]["canonical"]["unique_bytes"] < data["schemes"]["tensor"]["unique_bytes"]
    assert data == json.loads((tmp_path / "cli" / "report.json").read_text())
    assert cli_main(["report", "--out", str(tmp_path / "x")]) == 2
    assert "exactly one of --zoo DIR or --store" in capsys.readouterr().err
    assert cli_main(["report", "--zoo", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "zoo directory does not exist" in capsys.readouterr().err


def test_cdc_wins_on_appended_rows_tensor_wins_on_small_tensors(tmp_path):
    """Appending rows to a matrix (a vocabulary extension) makes a new tensor PB, but its old
    bytes are still a byte run that content-defined chunks find; small changed tensors next to
    shared ones cost CDC whole chunks, tensor PBs only the changed tensors."""
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(512, 64, generator=g)  # 128 KiB
    small = [torch.randn(256, generator=g) for _ in range(32)]  # 1 KiB each, below the min chunk
    (tmp_path / "base").mkdir()
    (tmp_path / "ext").mkdir()
    (tmp_path / "tuned").mkdir()
    save_file({"emb": emb}, str(tmp_path / "base" / "model.safetensors"))
    save_file({"emb": torch.cat([emb, torch.randn(4, 64, generator=g)])}, str(tmp_path / "ext" / "model.safetensors"))
    base_small = {f"t{i:02d}": t for i, t in enumerate(small)}
    tuned = {k: (v + 1 if i % 4 == 0 else v) for i, (k, v) in enumerate(base_small.items())}
    save_file(base_small, str(tmp_path / "base" / "small.safetensors"))
    save_file(tuned, str(tmp_path / "tuned" / "small.safetensors"))
    params = dict(cdc_avg=2048, cdc_min=512, cdc_max=8192)

    models, src = scan_dirs({"base": tmp_path / "base", "ext": tmp_path / "ext"})
    rep = dedup_report(models, src, **params)
    ext_bytes = rep.models[1].logical_bytes
    assert rep.schemes["tensor"].unique_bytes == rep.schemes["file"].unique_bytes  # nothing shared
    assert rep.schemes["cdc"].unique_bytes < rep.schemes["tensor"].unique_bytes - ext_bytes // 2

    models, src = scan_dirs({"base": tmp_path / "base", "tuned": tmp_path / "tuned"})
    rep = dedup_report(models, src, **params)
    assert rep.schemes["tensor"].unique_bytes < rep.schemes["cdc"].unique_bytes
