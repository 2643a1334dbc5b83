"""The bad-input table at store level: each bad model directory gets a one-line error naming the
file and the problem, a non-zero exit, and the store stays exactly as it was."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
import torch
from store_helpers import run_cli, save_st, small_model, store_state, toy_tensors

from pbkit.store import Store


def raw_st(header, data=b"", length=None) -> bytes:
    text = header.encode() if isinstance(header, str) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


class _Evil:
    """Unpickling this would run exec() and create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _bad_file(case: str, model: os.PathLike, tmp_path) -> str:
    """Put the bad file into `model` (a good model directory); return the name the error must show."""
    model = os.fspath(model)
    good = {"a": t("F32", [2], 0, 8), "b": t("I8", [3], 8, 11)}
    st = os.path.join(model, "z-bad.safetensors")  # sorts after the good files
    if case == "truncated safetensors":
        real = open(os.path.join(model, "model.safetensors"), "rb").read()
        open(st, "wb").write(real[: len(real) - 100])
    elif case == "header length past EOF":
        open(st, "wb").write(raw_st(good, bytes(11), length=10_000))
    elif case == "header over 100 MB":
        open(st, "wb").write(raw_st(good, bytes(11), length=100_000_001))
    elif case == "invalid header JSON":
        open(st, "wb").write(raw_st('{"a": {"dtype": "F32",', bytes(11)))
    elif case == "overlapping offsets":
        open(st, "wb").write(raw_st({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12)))
    elif case == "non-contiguous offsets":
        open(st, "wb").write(raw_st({"a": t("F32", [2], 0, 8), "b": t("F32", [1], 12, 16)}, bytes(16)))
    elif case == "unknown dtype":
        open(st, "wb").write(raw_st({"a": t("F24", [1], 0, 3)}, bytes(3)))
    elif case == "symlink escaping the model dir":
        outside = tmp_path / "secret.txt"
        outside.write_text("not part of the model")
        st = os.path.join(model, "tokenizer.json")
        os.symlink(outside, st)
    elif case == "malicious pickle":
        st = os.path.join(model, "pytorch_model.bin")
        with open(st, "wb") as f:
            pickle.dump({"w": _Evil(str(tmp_path / "PWNED"))}, f, protocol=2)
    elif case == "malicious pickle in torch zip":
        st = os.path.join(model, "pytorch_model.bin")
        torch.save({"w": torch.ones(2), "x": _Evil(str(tmp_path / "PWNED"))}, st)
    elif case == "invalid adapter_config.json":
        st = os.path.join(model, "adapter_config.json")
        open(st, "w").write("{not json")
    else:  # pragma: no cover
        raise AssertionError(case)
    return st


CASES = {
    "truncated safetensors": "truncated safetensors file",
    "header length past EOF": "runs past the end of the file",
    "header over 100 MB": "exceeds the 100000000-byte limit",
    "invalid header JSON": "not valid JSON",
    "overlapping offsets": "overlap",
    "non-contiguous offsets": "not contiguous",
    "unknown dtype": "unknown dtype 'F24'",
    "symlink escaping the model dir": "escapes the model directory",
    "malicious pickle": "refused",
    "malicious pickle in torch zip": "refused",
    "invalid adapter_config.json": "not valid JSON",
}


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory):
    """A store holding one model already (so "unchanged" is a real check)."""
    root = tmp_path_factory.mktemp("bad") / "store"
    src = small_model(root.parent / "existing", toy_tensors(5))
    with Store.open(root) as s:
        s.ingest(src, name="existing")
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_leaves_store_unchanged(case, seeded_store, tmp_path, capsys):
    model = small_model(tmp_path / "model", toy_tensors(0))  # good config + good weights ...
    save_st(model / "extra.safetensors", {"x": torch.arange(10.0)})
    bad = _bad_file(case, model, tmp_path)  # ... and one bad file
    before = store_state(seeded_store)

    code, out, err = run_cli(capsys, "--store", seeded_store, "ingest", model, "--name", "bad")
    assert code != 0 and out == ""
    assert err.startswith("pbkit: error: ") and err.count("\n") == 1, err
    assert bad in err or os.path.basename(bad) in err
    assert CASES[case] in err
    assert not (tmp_path / "PWNED").exists()  # the pickle's code never ran

    assert store_state(seeded_store) == before  # no new objects, no new model
    with Store.open(seeded_store) as s:
        v = s.verify()
        assert v.ok and v.unreferenced_objects == 0 and v.temp_files == 0


def test_bad_input_through_the_api_is_a_pbkit_error(seeded_store, tmp_path):
    from pbkit.errors import PbkitError

    model = small_model(tmp_path / "model", toy_tensors(0))
    _bad_file("overlapping offsets", model, tmp_path)
    with Store.open(seeded_store) as s, pytest.raises(PbkitError, match="z-bad.safetensors: .*overlap"):
        s.ingest(model, name="bad")


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["ingest", "/nonexistent/model-dir"], "no such directory"),
        (["ingest", "{model}", "--base", "nobody"], "base model 'nobody' is not in the store"),
        (["ingest", "{model}", "--name", " padded"], "model name"),
        (["assemble", "nope", "--out", "{tmp}/o"], "no model named 'nope'"),
        (["need", "existing", "--have", "nope"], "no model named 'nope'"),
        (["need", "existing", "--have-blocks", "{tmp}/absent"], "block directory does not exist"),
    ],
)
def test_cli_usage_errors_are_one_line(argv, fragment, seeded_store, tmp_path, capsys):
    model = small_model(tmp_path / "model", toy_tensors(0))
    argv = [a.format(model=model, tmp=tmp_path) for a in argv]
    before = store_state(seeded_store)
    code, out, err = run_cli(capsys, "--store", seeded_store, *argv)
    assert code != 0 and err.startswith("pbkit: error: ") and err.count("\n") == 1 and fragment in err, err
    assert store_state(seeded_store) == before
