"""The bad-input table: each malformed safetensors file gets a one-line SafetensorsFormatError
naming the file and the problem; where the reference library has the same rule, it rejects the
file too (so the reader is neither looser nor accidentally stricter than the format)."""

from __future__ import annotations

import json
import struct

import pytest
import safetensors
import safetensors.torch

from pbkit.errors import PbkitError
from pbkit.model.safetensors_layout import MAX_HEADER_BYTES, SafetensorsFormatError, read_layout


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def raw_header(header: dict) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


GOOD = {"a": t("F32", [2], 0, 8), "b": t("I8", [3], 8, 11)}
DATA = bytes(11)

# (case id, header, data, keyword args for raw_safetensors, expected message fragment,
#  whether safetensors 0.8 rejects it too)
CASES = [
    ("header past EOF", GOOD, DATA, {"length": 10_000}, "runs past the end of the file", True),
    ("header over 100 MB", GOOD, DATA, {"length": MAX_HEADER_BYTES + 1}, "exceeds the 100000000-byte limit", True),
    ("invalid JSON", '{"a": {"dtype": "F32",', DATA, {}, "not valid JSON", True),
    ("not UTF-8", b'{"\xff\xfe": 1}', b"", {}, "not valid UTF-8", True),
    ("header is a list", "[1, 2]", b"", {}, "not a JSON object", True),
    ("overlapping offsets", {"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, bytes(12), {}, "overlap", True),
    (
        "gap between offsets",
        {"a": t("F32", [2], 0, 8), "b": t("F32", [1], 12, 16)},
        bytes(16),
        {},
        "gap of 4 bytes",
        True,
    ),
    ("data not from 0", {"a": t("F32", [1], 4, 8)}, bytes(8), {}, "gap of 4 bytes", True),
    ("unknown dtype", {"a": t("F24", [1], 0, 3)}, bytes(3), {}, "unknown dtype 'F24'", True),
    ("wrong byte count", {"a": t("F32", [3], 0, 8)}, bytes(8), {}, "needs 12", True),
    ("negative dimension", {"a": t("F32", [-1], 0, 0)}, b"", {}, "not a list of non-negative integers", True),
    ("float dimension", {"a": t("F32", [2.0], 0, 8)}, bytes(8), {}, "not a list of non-negative integers", True),
    ("offsets reversed", {"a": t("F32", [0], 8, 0)}, bytes(8), {}, "is not [begin, end]", True),
    (
        "missing shape",
        {"a": {"dtype": "F32", "data_offsets": [0, 4]}},
        bytes(4),
        {},
        "exactly dtype, shape and data_offsets",
        True,
    ),
    ("metadata not str->str", {"__metadata__": {"k": 1}, **GOOD}, DATA, {}, "__metadata__", True),
    ("truncated data", GOOD, DATA[:-3], {}, "truncated safetensors file", True),
    ("trailing bytes", GOOD, DATA + b"xyz", {}, "3 trailing bytes", True),
    ("sub-byte not whole bytes", {"a": t("F4", [3], 0, 2)}, bytes(2), {}, "does not fill whole bytes", True),
    # stricter than the reference (serde keeps the last duplicate): a store must not guess
    (
        "duplicate tensor name",
        '{"a":'
        + '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}' * 1
        + ',"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
        bytes(2),
        {},
        "duplicate key 'a'",
        False,
    ),
]


@pytest.mark.parametrize("case,header,data,kw,fragment,reference_rejects", CASES, ids=[c[0] for c in CASES])
def test_bad_input_table(make_st, case, header, data, kw, fragment, reference_rejects):
    path = make_st(header, data, **kw)
    with pytest.raises(SafetensorsFormatError) as info:
        read_layout(path)
    msg = str(info.value)
    assert isinstance(info.value, PbkitError) and isinstance(info.value, ValueError)
    assert msg.startswith(f"{path}: ")
    assert fragment in msg
    assert "\n" not in msg
    if reference_rejects:
        with pytest.raises(Exception):  # noqa: B017 (the reference reader raises its own types)
            with safetensors.safe_open(path, framework="pt") as f:
                for k in f.keys():
                    f.get_tensor(k)


@pytest.mark.parametrize("size", [0, 1, 7])
def test_shorter_than_length_field(tmp_path, size):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01" * size)
    with pytest.raises(SafetensorsFormatError, match=r"shorter than the 8-byte header length"):
        read_layout(path)


def test_truncated_real_file(tmp_path, bundled_dir):
    """A real model file cut short (an interrupted download) is caught from the header alone."""
    src = (bundled_dir / "model.safetensors").read_bytes()
    cut = tmp_path / "model.safetensors"
    cut.write_bytes(src[: len(src) // 2])
    with pytest.raises(SafetensorsFormatError, match="truncated safetensors file"):
        read_layout(cut)
    # cut inside the header: the length field now points past the end
    cut.write_bytes(src[:100])
    with pytest.raises(SafetensorsFormatError, match="runs past the end of the file"):
        read_layout(cut)


def test_header_limit_checked_before_reading(tmp_path):
    """A huge declared header is refused from the 8 length bytes, without reading or allocating it."""
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(SafetensorsFormatError, match="exceeds"):
        read_layout(path)


def test_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(SafetensorsFormatError, match="cannot read"):
        read_layout(tmp_path / "absent.safetensors")


def test_empty_and_zero_size_tensors_share_offsets(make_st):
    """Several empty tensors may sit at the same offset (they tile nothing); that is valid."""
    header = {"e1": t("F32", [0], 0, 0), "x": t("U8", [2], 0, 2), "e2": t("F32", [0, 3], 2, 2)}
    path = make_st(header, b"\x01\x02")
    layout = read_layout(path)
    assert [e.name for e in layout.tensors] == ["e1", "x", "e2"]
    assert set(safetensors.torch.load_file(path)) == {"e1", "x", "e2"}


def test_header_exactly_at_limit_is_not_rejected_for_size(tmp_path):
    """The limit is inclusive, as in safetensors (N > 100 MB is the error)."""
    path = tmp_path / "limit.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES) + b"{}")
    with pytest.raises(SafetensorsFormatError, match="runs past the end"):
        read_layout(path)


def test_huge_file_reads_only_the_header(tmp_path):
    """A (sparse) 8 GiB checkpoint is laid out from its header alone, without touching the data."""
    import time

    n = 2**31  # F32 elements -> 8 GiB
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        head = raw_header({"w": t("F32", [n], 0, 4 * n)})
        f.write(head)
        f.truncate(len(head) + 4 * n)  # sparse: no data blocks are allocated
    t0 = time.perf_counter()
    layout = read_layout(path)
    assert time.perf_counter() - t0 < 0.5
    (e,) = layout.tensors
    assert e.nbytes == 4 * n and layout.file_size == len(head) + 4 * n
