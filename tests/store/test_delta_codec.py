"""The delta codec (pbkit.store.delta): decode(encode(t, r), r) == t bit for bit, for every
delta-coded dtype and the values that break float arithmetic (NaN payloads, -0.0, inf,
subnormals), and malformed blocks fail with DeltaError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbkit.store import delta

WIDTH = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
# Bit patterns that float code tends to normalise: signalling/quiet NaNs with payloads, -0.0,
# +-inf, the smallest subnormals, all ones.
SPECIAL = {
    2: [0x7C01, 0xFE00, 0x7FFF, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x8001, 0xFFFF, 0x7F81],
    4: [0x7F800001, 0xFFC00001, 0x7FFFFFFF, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x80000001, 0xFFFFFFFF],
    8: [0x7FF0000000000001, 0xFFF8000000000001, 0x8000000000000000, 0x7FF0000000000000, 0x1, 0xFFFFFFFFFFFFFFFF],
}
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@st.composite
def tensor_pairs(draw):
    dtype = draw(st.sampled_from(sorted(WIDTH)))
    w = WIDTH[dtype]
    n = draw(st.integers(0, 300))
    pool = st.one_of(st.sampled_from(SPECIAL[w]), st.integers(0, 2 ** (8 * w) - 1))
    ref = np.array(draw(st.lists(pool, min_size=n, max_size=n)), dtype=UINT[w])
    # the target: the reference with some elements changed (a fine-tune), some replaced outright
    target = ref.copy()
    for i in draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=n)) if n else []:
        target[i] = draw(pool) if draw(st.booleans()) else target[i] ^ draw(st.integers(1, 255))
    return dtype, target.tobytes(), ref.tobytes()


@settings(max_examples=150, deadline=None)
@given(tensor_pairs())
def test_round_trip_is_bit_exact(pair):
    dtype, target, ref = pair
    block = delta.encode(target, ref, dtype)
    assert block is not None
    assert bytes(delta.decode(block, ref, dtype)) == target
    assert delta.encode(target, ref, dtype) == block  # pure: same bytes, same block (content-addressed)


def test_large_tensor_round_trips_across_chunks():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(200_003).astype(np.float32)  # more than three 64 K-element chunks
    target = ref + rng.standard_normal(ref.size).astype(np.float32) * 1e-4
    target[[0, 7, 199_999]] = [np.nan, -0.0, np.inf]
    block = delta.encode(target.tobytes(), ref.tobytes(), "F32")
    assert bytes(delta.decode(block, ref.tobytes(), "F32")) == target.tobytes()
    assert len(block) < 0.9 * target.nbytes  # a small update compresses


def test_unsupported_dtypes_are_stored_exactly():
    for dtype in ("I8", "U8", "BOOL", "I64", "F8_E4M3"):
        assert not delta.supports(dtype)
        assert delta.encode(b"\x01\x02", b"\x01\x03", dtype) is None


def test_malformed_blocks_fail_cleanly():
    ref = np.arange(1000, dtype=np.float32).tobytes()
    target = (np.arange(1000, dtype=np.float32) + 0.5).tobytes()
    block = delta.encode(target, ref, "F32")
    with pytest.raises(delta.DeltaError, match="header"):
        delta.decode(block[:10], ref, "F32")
    with pytest.raises(delta.DeltaError, match="plane table"):
        delta.decode(block[:-1], ref, "F32")
    with pytest.raises(delta.DeltaError, match="elements"):
        delta.decode(block, ref[:-4], "F32")
    with pytest.raises(delta.DeltaError, match="not a"):
        delta.decode(block, ref[:2000], "F16")
    bad = bytearray(block)
    bad[-20] ^= 0xFF  # inside the last zstd frame
    try:
        out = delta.decode(bytes(bad), ref, "F32")
    except delta.DeltaError:
        pass
    else:  # zstd may decode altered bytes: then the result differs and the id check catches it
        assert bytes(out) != target
    with pytest.raises(delta.DeltaError, match="equal sizes"):
        delta.encode(target, ref[:-4], "F32")
