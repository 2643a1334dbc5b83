"""PB ids and file digests: stable definition, domain separation, streaming and threaded forms."""

from __future__ import annotations

import hashlib
import mmap
import random

import blake3
import pytest

from pbkit.model.digest import (
    PARALLEL_MIN_BYTES,
    StreamingBlob,
    StreamingPB,
    blob_id,
    blob_id_file,
    buffer_sha256,
    file_sha256,
    pb_id,
    pb_preamble,
)


def test_pb_id_definition_is_pinned():
    """The id is BLAKE3(b"pbkit/pb/v1\\0" dtype \\0 shape \\0 bytes); stored ids depend on it."""
    raw = b"\x00\x00\x80\x3f" * 6
    expected = blake3.blake3(b"pbkit/pb/v1\0F32\x002,3\0" + raw).hexdigest()
    assert pb_preamble("F32", (2, 3)) == b"pbkit/pb/v1\0F32\x002,3\0"
    assert pb_id("F32", (2, 3), raw) == expected
    assert pb_preamble("F32", ()) == b"pbkit/pb/v1\0F32\0\0"  # 0-d
    assert pb_id("F32", (), raw[:4]) != pb_id("F32", (1,), raw[:4])
    assert pb_id("F32", (0,), b"") != pb_id("F32", (0, 0), b"") != pb_id("F16", (0,), b"")


def test_blob_domain_differs_from_pb_domain():
    data = b"{}"
    assert blob_id(data) == blake3.blake3(b"pbkit/blob/v1\0" + data).hexdigest()
    assert blob_id(data) != pb_id("U8", (2,), data)
    # no (dtype, shape) can make a PB id collide with a blob id by moving bytes into the preamble
    assert blob_id(b"") != pb_id("", (), b"")


@pytest.mark.parametrize(
    "size", [0, 1, 1023, 1025, PARALLEL_MIN_BYTES - 1, PARALLEL_MIN_BYTES, 3 * PARALLEL_MIN_BYTES + 17]
)
def test_threaded_and_streamed_forms_agree(size):
    rnd = random.Random(size)
    data = rnd.randbytes(size)
    single = blake3.blake3(pb_preamble("BF16", (size,)) + data, max_threads=1).hexdigest()
    assert pb_id("BF16", (size,), data) == single
    assert pb_id("BF16", (size,), memoryview(data)) == single
    s = StreamingPB("BF16", (size,), size_hint=size)
    pos = 0
    while pos < size:
        step = rnd.randint(1, 200_000)
        s.update(memoryview(data)[pos : pos + step])
        pos += step
    assert s.hexdigest() == single and s.nbytes == size
    b = StreamingBlob(size_hint=size)
    b.update(data)
    assert b.hexdigest() == blob_id(data)


def test_file_digests_from_mmap(tmp_path, bundled_dir):
    path = bundled_dir / "model.safetensors"
    raw = path.read_bytes()
    assert file_sha256(path) == hashlib.sha256(raw).hexdigest() == buffer_sha256(raw)
    assert blob_id_file(path) == blob_id(raw)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        try:
            assert blob_id(view) == blob_id(raw)
        finally:
            view.release()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == hashlib.sha256(b"").hexdigest()
    assert blob_id_file(empty) == blob_id(b"")


def test_pb_ids_batch_equals_single(bundled_dir):
    from concurrent.futures import ThreadPoolExecutor

    from pbkit.model.digest import pb_ids
    from pbkit.model.safetensors_layout import read_layout

    path = bundled_dir / "model.safetensors"
    layout = read_layout(path)
    data = path.read_bytes()
    expected = [pb_id(t.dtype, t.shape, data[t.begin : t.end]) for t in layout.tensors]
    assert pb_ids(data, layout.tensors) == expected
    with ThreadPoolExecutor(2) as pool:
        assert pb_ids(data, layout.tensors, pool) == expected
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        with ThreadPoolExecutor(2) as pool:
            assert pb_ids(m, layout.tensors, pool) == expected
    # leaving the with-block closed the mmap: pb_ids kept no view of it alive
