"""The PB library format: loader validation (one clear error per problem) and the synthetic
generator (deterministic, marked synthetic)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pbkit.cli import main as cli_main
from pbkit.library import LibraryError, PBLibrary, load_library, synthetic_library


def _good() -> dict:
    return {
        "format": "pbkit-pb-library",
        "version": 1,
        "granularity": "tensor",
        "pbs": [{"id": "p1", "bytes": 10}, {"id": "p2", "bytes": 5, "label": "head", "tensors": ["h.w"]}],
        "models": [
            {"name": "base", "pbs": ["p1"], "kind": "base"},
            {"name": "ad", "pbs": ["p1", "p2"], "kind": "adapter", "base": "base", "bytes": 15},
        ],
    }


def _edit(fn):
    data = _good()
    fn(data)
    return data


BAD = [
    ("top level list", lambda: [], "top level is not a JSON object"),
    ("format", lambda: _edit(lambda d: d.update(format="other")), "format 'other' is not 'pbkit-pb-library'"),
    ("newer", lambda: _edit(lambda d: d.update(version=3)), "version 3 is newer than this pbkit reads (2)"),
    ("version str", lambda: _edit(lambda d: d.update(version="1")), "version '1' is not a positive integer"),
    ("no pbs", lambda: _edit(lambda d: d.pop("pbs")), "missing list 'pbs'"),
    ("pb lacks id", lambda: _edit(lambda d: d["pbs"][0].pop("id")), "an entry lacks a required key ('id')"),
    ("pb twice", lambda: _edit(lambda d: d["pbs"].append({"id": "p1", "bytes": 1})), "PB p1 is listed twice"),
    (
        "negative",
        lambda: _edit(lambda d: d["pbs"][0].update(bytes=-1)),
        "PB p1: bytes -1 is not a non-negative integer",
    ),
    (
        "float bytes",
        lambda: _edit(lambda d: d["pbs"][0].update(bytes=1.5)),
        "PB p1: bytes 1.5 is not a non-negative integer",
    ),
    (
        "unknown pb",
        lambda: _edit(lambda d: d["models"][0].update(pbs=["p9"])),
        "model base needs PB p9, which is not in pbs",
    ),
    ("pb repeated", lambda: _edit(lambda d: d["models"][0].update(pbs=["p1", "p1"])), "model base lists a PB twice"),
    ("no model pbs", lambda: _edit(lambda d: d["models"][0].update(pbs=[])), "model base has no PBs"),
    (
        "model twice",
        lambda: _edit(lambda d: d["models"].append({"name": "base", "pbs": ["p1"]})),
        "model base is listed twice",
    ),
    (
        "bad base",
        lambda: _edit(lambda d: d["models"][1].update(base="nope")),
        "model ad: base nope is not a model here",
    ),
    ("base loop", lambda: _edit(lambda d: d["models"][0].update(base="ad")), "base chain loops"),
    (
        "bytes disagree",
        lambda: _edit(lambda d: d["models"][1].update(bytes=16)),
        "model ad: bytes 16 disagrees with the sum of its PBs (15)",
    ),
    (
        "granularity",
        lambda: _edit(lambda d: d.update(granularity="row")),
        "granularity 'row' is not one of tensor, layer, fixed",
    ),
    (
        "tensors",
        lambda: _edit(lambda d: d["pbs"][1].update(tensors="h.w")),
        "pbs[1]: label must be a string and tensors a list of strings",
    ),
    (
        "model pbs",
        lambda: _edit(lambda d: d["models"][0].update(pbs="p1")),
        "models[0] ('base'): pbs is not a list of PB ids",
    ),
    ("synthetic", lambda: _edit(lambda d: d.update(synthetic="yes")), "synthetic 'yes' is not a bool"),
    ("no models", lambda: _edit(lambda d: d.update(models=[])), "library has no models"),
]


@pytest.mark.parametrize("make, problem", [(m, p) for _, m, p in BAD], ids=[b[0] for b in BAD])
def test_loader_rejects_bad_files(tmp_path, make, problem):
    path = tmp_path / "lib.json"
    path.write_text(json.dumps(make()))
    with pytest.raises(LibraryError) as info:
        load_library(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and problem in msg and "\n" not in msg, msg


def test_loader_reads_a_good_file_and_unreadable_ones(tmp_path):
    path = tmp_path / "lib.json"
    path.write_text(json.dumps(_good()))
    lib = load_library(path)
    assert lib.model_bytes().tolist() == [10, 15]
    assert lib.membership().tolist() == [[True, False], [True, True]]
    assert lib.sharing()["shared_pb_bytes"] == 10
    path.write_text("{not json")
    with pytest.raises(LibraryError, match=r"lib\.json: invalid JSON"):
        load_library(path)
    with pytest.raises(LibraryError, match="cannot read"):
        load_library(tmp_path / "missing.json")
    # minimal keys only: what scripts rely on
    path.write_text(json.dumps({"pbs": [{"id": "a", "bytes": 1}], "models": [{"name": "m", "pbs": ["a"]}]}))
    assert load_library(path).model_names == ["m"]


def test_synthetic_generator(tmp_path, capsys):
    a = synthetic_library(np.random.default_rng(3), families=3, models_per_family=4, base_pbs=10, shared_fraction=0.6)
    b = synthetic_library(np.random.default_rng(3), families=3, models_per_family=4, base_pbs=10, shared_fraction=0.6)
    assert a.to_dict() == b.to_dict()
    assert a.synthetic and a.source["kind"] == "synthetic"
    assert len(a.models) == 3 * 5
    base = {m.name: set(m.pbs) for m in a.models}
    assert len(base["family0-task0"] & base["family0-base"]) == 6  # round(0.6 * 10) frozen blocks
    assert not base["family0-task0"] & base["family1-base"]  # families share nothing
    path = a.save(tmp_path / "syn.json")
    data = json.loads(path.read_text())
    assert data["synthetic"] is True
    assert load_library(path).synthetic
    with pytest.raises(LibraryError, match="shared_fraction"):
        synthetic_library(np.random.default_rng(0), shared_fraction=1.5)
    assert cli_main(["library", "synthetic", "--out", str(tmp_path / "s.json"), "--seed", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["synthetic"] is True and out["models"] == 14
    assert cli_main(["library", "check", str(tmp_path / "s.json")]) == 0
    assert "synthetic" in capsys.readouterr().out


def test_roundtrip_preserves_everything():
    lib = synthetic_library(np.random.default_rng(1))
    again = PBLibrary.from_dict(json.loads(json.dumps(lib.to_dict())))
    assert again.to_dict() == lib.to_dict()


def test_save_error_names_the_target_not_the_temporary_file(tmp_path):
    lib = synthetic_library(np.random.default_rng(0), families=1, models_per_family=2, base_pbs=2, own_pbs=1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "lib.json"  # its parent is a file: nothing can be created there
    with pytest.raises(OSError) as info:
        lib.save(target)
    # the file in the way is named (not the temporary file, and not "File exists" about the target)
    assert info.value.filename == str(blocker) and "not a directory" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
