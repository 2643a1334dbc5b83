"""Property tests of the safetensors reader against files written by the real safetensors library.

For arbitrary tensor sets (many dtypes incl. bf16, bool, int8; 0-d and empty tensors; metadata)
and for hand-made non-canonical headers (key order, whitespace, padding): the header bytes and the
tensor bytes tile the file exactly, each tensor's bytes are what safetensors loads, and PB ids are
equal exactly when (dtype, shape, bytes) are.
"""

from __future__ import annotations

import json
import math
import mmap
import random
import struct

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pbkit.model.digest import pb_id
from pbkit.model.legacy_pickle import tensor_raw
from pbkit.model.safetensors_layout import DTYPE_BITS, read_layout

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "U16": torch.uint16,
    "U32": torch.uint32,
    "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "U16": np.uint16,
    "U32": np.uint32,
    "U64": np.uint64,
    "BOOL": np.bool_,
}

shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
names = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=12).filter(
    lambda s: s != "__metadata__"
)
metadata = st.none() | st.dictionaries(st.text(max_size=8).filter(lambda s: s != ""), st.text(max_size=16), max_size=3)


@st.composite
def tensor_spec(draw, dtypes):
    dtype = draw(st.sampled_from(sorted(dtypes)))
    shape = draw(shapes)
    nbytes = math.prod(shape) * DTYPE_BITS[dtype] // 8
    if dtype == "BOOL":  # a bool byte other than 0/1 is not a valid bool value
        raw = bytes(draw(st.lists(st.integers(0, 1), min_size=nbytes, max_size=nbytes)))
    else:
        raw = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return dtype, shape, raw


def torch_tensor(dtype: str, shape: tuple[int, ...], raw: bytes) -> torch.Tensor:
    buf = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    return buf.view(TORCH_DTYPES[dtype]).reshape(shape).clone()


def check_roundtrip(path, expected_metadata):
    """The invariants every valid file must satisfy."""
    layout = read_layout(path)
    data = path.read_bytes()
    assert layout.file_size == len(data)
    assert layout.header == data[: layout.data_start]
    assert layout.header + b"".join(data[e.begin : e.end] for e in layout.tensors) == data
    assert layout.metadata == expected_metadata
    loaded = safetensors.torch.load_file(path)
    assert {e.name for e in layout.tensors} == set(loaded)
    for e in layout.tensors:
        dtype, shape, raw = tensor_raw(loaded[e.name])
        assert (dtype, shape) == (e.dtype, e.shape)
        assert bytes(raw) == data[e.begin : e.end]
    return layout, data


@SETTINGS
@given(tensors=st.dictionaries(names, tensor_spec(TORCH_DTYPES), max_size=6), meta=metadata)
def test_torch_written_files_roundtrip(tmp_path, tensors, meta):
    # safetensors 0.8 writes invalid JSON ('{},"__metadata__":...}') for no tensors + metadata
    # and then cannot read it back either; that file is covered by the bad-input table.
    assume(tensors or meta is None)
    path = tmp_path / "t.safetensors"
    safetensors.torch.save_file({k: torch_tensor(*v) for k, v in tensors.items()}, path, metadata=meta)
    layout, data = check_roundtrip(path, meta)
    for e in layout.tensors:
        dtype, shape, raw = tensors[e.name]
        assert pb_id(e.dtype, e.shape, data[e.begin : e.end]) == pb_id(dtype, shape, raw)


@SETTINGS
@given(tensors=st.dictionaries(names, tensor_spec(NUMPY_DTYPES), max_size=6), meta=metadata)
def test_numpy_written_files_roundtrip(tmp_path, tensors, meta):
    assume(tensors or meta is None)  # see test_torch_written_files_roundtrip
    path = tmp_path / "n.safetensors"
    arrays = {k: np.frombuffer(raw, dtype=NUMPY_DTYPES[d]).reshape(s).copy() for k, (d, s, raw) in tensors.items()}
    safetensors.numpy.save_file(arrays, path, metadata=meta)
    layout, data = check_roundtrip(path, meta)
    loaded = safetensors.numpy.load_file(path)
    for e in layout.tensors:
        assert loaded[e.name].tobytes() == data[e.begin : e.end]


@SETTINGS
@given(
    tensors=st.dictionaries(names, tensor_spec(TORCH_DTYPES), min_size=1, max_size=5),
    meta=metadata,
    seed=st.integers(0, 2**32 - 1),
    indent=st.sampled_from([None, 0, 1, 2]),
    pad=st.integers(0, 24),
    meta_last=st.booleans(),
)
def test_noncanonical_headers_roundtrip(tmp_path, tensors, meta, seed, indent, pad, meta_last):
    """Headers safetensors never writes itself (shuffled keys, pretty JSON, extra padding,
    data in an order different from the key order) are still read and kept byte for byte."""
    rnd = random.Random(seed)
    items = list(tensors.items())
    rnd.shuffle(items)  # data order
    offset, chunks, entries = 0, [], {}
    for name, (dtype, shape, raw) in items:
        entries[name] = {"data_offsets": [offset, offset + len(raw)], "shape": list(shape), "dtype": dtype}
        chunks.append(raw)
        offset += len(raw)
    keys = list(entries)
    rnd.shuffle(keys)  # key order, independent of data order
    header = {k: entries[k] for k in keys}
    if meta is not None:
        header = ({**header, "__metadata__": meta}) if meta_last else {"__metadata__": meta, **header}
    text = json.dumps(header, indent=indent, ensure_ascii=rnd.random() < 0.5) + " " * pad
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", len(text.encode())) + text.encode() + b"".join(chunks))
    layout, data = check_roundtrip(path, meta)
    assert layout.header.endswith(b" " * pad)
    assert [e.name for e in layout.tensors if e.end > e.begin] == [n for n, v in items if v[2]]


@SETTINGS
@given(a=tensor_spec({"F32", "I32", "U8", "I8"}), b=tensor_spec({"F32", "I32", "U8", "I8"}))
def test_pb_id_equal_iff_dtype_shape_bytes_equal(a, b):
    assert (pb_id(*a) == pb_id(*b)) == (a == b)


def test_pb_id_binds_dtype_and_shape_not_name(tmp_path):
    raw = bytes(range(24))
    ids = {
        pb_id("F32", (6,), raw),
        pb_id("F32", (2, 3), raw),
        pb_id("F32", (3, 2), raw),
        pb_id("I32", (6,), raw),
        pb_id("U8", (24,), raw),
        pb_id("U8", (1, 24), raw),
    }
    assert len(ids) == 6
    # same bytes under two names (e.g. tied or renamed weights) -> one PB id
    t = torch.arange(6, dtype=torch.float32)
    path = tmp_path / "tied.safetensors"
    safetensors.torch.save_file({"a.weight": t, "b.weight": t.clone()}, path)
    layout = read_layout(path)
    data = path.read_bytes()
    got = {e.name: pb_id(e.dtype, e.shape, data[e.begin : e.end]) for e in layout.tensors}
    assert got["a.weight"] == got["b.weight"]


def test_real_model_layout_and_mmap_ids(bundled_dir):
    """The bundled MiniLM: every tensor's bytes (from an mmap, no copy) equal what safetensors loads."""
    path = bundled_dir / "model.safetensors"
    layout = read_layout(path)
    loaded = safetensors.torch.load_file(path)
    assert len(layout.tensors) == len(loaded) > 50
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        try:
            assert bytes(view[: layout.data_start]) == layout.header
            for e in layout.tensors:
                dtype, shape, raw = tensor_raw(loaded[e.name])
                assert pb_id(e.dtype, e.shape, view[e.begin : e.end]) == pb_id(dtype, shape, raw)
        finally:
            view.release()


@pytest.mark.parametrize("dtype,shape,nbytes", [("F4", (4, 2), 4), ("F6_E2M3", (4,), 3), ("F8_E8M0", (3,), 3)])
def test_subbyte_and_new_dtypes(make_st, dtype, shape, nbytes):
    path = make_st({"t": {"dtype": dtype, "shape": list(shape), "data_offsets": [0, nbytes]}}, b"\x01" * nbytes)
    (e,) = read_layout(path).tensors
    assert (e.dtype, e.shape, e.end - e.begin) == (dtype, shape, nbytes)
    with safetensors.safe_open(path, framework="numpy") as f:  # the reference accepts it too
        assert list(f.keys()) == ["t"]
