"""Legacy pytorch_model.bin: tensors load; any other object is refused and never executed."""

from __future__ import annotations

import os
import pickle

import pytest
import safetensors.torch
import torch

from pbkit.errors import PbkitError
from pbkit.model.digest import pb_id
from pbkit.model.legacy_pickle import LegacyPickleError, load_state_dict_safely, tensor_raw
from pbkit.model.safetensors_layout import read_layout


class _SystemCall:
    """Unpickling this runs a shell command (the classic malicious-checkpoint payload)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


class _Plain:
    pass


def _payloads(marker):
    touch = f"touch {marker}"
    return {
        "os.system in a torch.save zip": lambda p: torch.save({"w": torch.zeros(2), "x": _SystemCall(touch)}, p),
        "exec in a torch.save zip": lambda p: torch.save(
            {"w": torch.zeros(2), "x": _Exec(f"open({str(marker)!r}, 'w').close()")}, p
        ),
        "os.system in a legacy (non-zip) torch.save": lambda p: torch.save(
            {"x": _SystemCall(touch)}, p, _use_new_zipfile_serialization=False
        ),
        "os.system in a bare pickle": lambda p: p.write_bytes(pickle.dumps({"x": _SystemCall(touch)}, protocol=2)),
        "class instance": lambda p: torch.save({"w": _Plain()}, p),
    }


@pytest.mark.parametrize("kind", list(_payloads("m")))
def test_malicious_pickles_refused_without_execution(tmp_path, kind):
    marker = tmp_path / "PWNED"
    path = tmp_path / "pytorch_model.bin"
    _payloads(marker)[kind](path)
    with pytest.raises(LegacyPickleError) as info:
        load_state_dict_safely(path)
    msg = str(info.value)
    assert isinstance(info.value, PbkitError)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert not marker.exists()


def test_payload_would_execute_with_an_unsafe_loader(tmp_path):
    """Proves the marker check above can fail: an unrestricted unpickler does run the payload."""
    marker = tmp_path / "PWNED"
    data = pickle.dumps({"x": _SystemCall(f"touch {marker}")}, protocol=2)
    pickle.loads(data)  # deliberately unsafe, on our own payload
    assert marker.exists()


def test_real_model_state_dict_matches_safetensors(tmp_path, bundled_dir):
    """A .bin holding the bundled MiniLM's tensors loads, and its PB ids equal the safetensors ones."""
    st_path = bundled_dir / "model.safetensors"
    tensors = safetensors.torch.load_file(st_path)
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save(tensors, bin_path)
    loaded = load_state_dict_safely(bin_path)
    assert set(loaded) == set(tensors)
    layout = read_layout(st_path)
    data = st_path.read_bytes()
    for e in layout.tensors:
        assert torch.equal(loaded[e.name], tensors[e.name])
        assert pb_id(*tensor_raw(loaded[e.name])) == pb_id(e.dtype, e.shape, data[e.begin : e.end])


def test_views_and_noncontiguous_tensors(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    path = tmp_path / "pytorch_model.bin"
    torch.save(
        {"t": base.t(), "row": base[1], "scalar": torch.tensor(7, dtype=torch.int8), "empty": torch.empty(0, 3)}, path
    )
    loaded = load_state_dict_safely(path)
    dtype, shape, raw = tensor_raw(loaded["t"])
    assert (dtype, shape) == ("F32", (4, 3)) and bytes(raw) == base.t().contiguous().numpy().tobytes()
    assert tensor_raw(loaded["scalar"])[:2] == ("I8", ())
    assert bytes(tensor_raw(loaded["empty"])[2]) == b""


@pytest.mark.parametrize(
    "obj,fragment",
    [
        ([torch.zeros(1)], "not a state dict"),
        ({"model": {"w": torch.zeros(1)}}, "not a flat state dict"),
        ({"step": 3}, "not a flat state dict"),
    ],
)
def test_not_a_flat_state_dict(tmp_path, obj, fragment):
    path = tmp_path / "pytorch_model.bin"
    torch.save(obj, path)
    with pytest.raises(LegacyPickleError, match=fragment):
        load_state_dict_safely(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(LegacyPickleError, match="not a readable PyTorch checkpoint"):
        load_state_dict_safely(path)
