"""Object writes through direct I/O (pbkit.store.objects._Direct) and the buffered path beside it.

Big regions are written with O_DIRECT: straight from an mmap of the source when the region
starts on a 512-byte boundary, else through an aligned buffer; the last partial 4 KiB block
goes buffered. Every variant must give the region's bytes exactly, also across chunks; a
source shorter than its region is an error that leaves nothing visible; and a whole ingest of a
model whose tensors are aligned (zero-copy) and one whose tensors are not both assemble
bit-exactly.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from store_helpers import sha256_tree

from pbkit.errors import PbkitError
from pbkit.model.digest import blob_id, pb_id
from pbkit.store import Store
from pbkit.store import objects as objects_mod
from pbkit.store.objects import FileRegion, ObjectDir

MiB = 1 << 20
# (offset, length): aligned and unaligned starts; whole blocks, a tail, one byte over the
# direct-I/O minimum, several chunks, and regions too small for direct I/O.
REGIONS = [
    (0, MiB),
    (512, MiB + 100),
    (13, 300 * 4096),
    (4096, objects_mod._DIRECT_CHUNK * 2 + 4096 * 3 + 7),
    (77, objects_mod._DIRECT_CHUNK + 1),
    (1000, MiB - 1),
    (5, 10),
]


def _direct_supported(path) -> bool:
    if not objects_mod._O_DIRECT:
        return False
    try:
        fd = os.open(path / "probe", os.O_WRONLY | os.O_CREAT | objects_mod._O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path / "probe")
    return True


@pytest.fixture
def source(tmp_path):
    data = np.random.default_rng(7).integers(0, 256, size=objects_mod._DIRECT_CHUNK * 3, dtype=np.uint8).tobytes()
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return path, data


def _objects(tmp_path) -> ObjectDir:
    o = ObjectDir(tmp_path / "objects", tmp_path / "tmp")
    o.ensure()
    return o


def test_regions_are_written_exactly(tmp_path, source):
    path, data = source
    objects = _objects(tmp_path)
    items = []
    for off, n in REGIONS:
        items.append((blob_id(data[off : off + n]), FileRegion(path, off, n)))
    written, nbytes = objects.write_many(items)
    assert written == len(REGIONS) and nbytes == sum(n for _, n in REGIONS)
    for (off, n), (oid, _) in zip(REGIONS, items):
        assert objects.read(oid) == data[off : off + n]
    assert list(objects.iter_temp()) == []


def test_direct_copy_is_used_and_exact(tmp_path, source):
    """The direct path really runs here (both variants), and copies whole blocks only."""
    path, data = source
    if not _direct_supported(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    direct = objects_mod._Direct()
    in_fd = os.open(path, os.O_RDONLY)
    try:
        for off, n in [(0, 3 * MiB + 5), (13, 3 * MiB + 5)]:  # from the mmap; through the buffer
            out = tmp_path / f"out-{off}"
            fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                done = direct.copy(in_fd, off, n, fd)
                assert done == n - n % 4096 and direct.enabled
                objects_mod._copy_region(in_fd, off + done, n - done, fd, done)
            finally:
                os.close(fd)
            assert out.read_bytes() == data[off : off + n]
        fd = os.open(tmp_path / "small", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            assert direct.copy(in_fd, 0, MiB - 1, fd) == 0  # below the minimum: the caller copies it all
        finally:
            os.close(fd)
    finally:
        direct.close()
        os.close(in_fd)


def test_source_shorter_than_region_is_an_error_and_nothing_is_visible(tmp_path, source):
    path, data = source
    objects = _objects(tmp_path)
    size = len(data)
    bad = FileRegion(path, size - 2 * MiB, 4 * MiB)  # runs 2 MiB past the end of the file
    good = FileRegion(path, 0, 2 * MiB)
    with pytest.raises(PbkitError, match="shrank"):
        objects.write_many([(blob_id(data[: 2 * MiB]), good), ("ab" * 32, bad)])
    assert list(objects.iter_ids()) == []
    assert list(objects.iter_temp()) == []


def _safetensors_at(path, tensors: dict[str, np.ndarray], data_start: int) -> list[tuple[int, int]]:
    """A safetensors file whose data starts at `data_start` (header padded with spaces, as the
    format allows), tensors in the given order; returns each tensor's absolute (begin, end)."""
    header, offsets, off = {}, [], 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        offsets.append((data_start + off, data_start + off + a.nbytes))
        off += a.nbytes
    text = json.dumps(header).encode()
    assert len(text) <= data_start - 8
    text += b" " * (data_start - 8 - len(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for a in tensors.values():
            f.write(a.tobytes())
    return offsets


@pytest.mark.parametrize("data_start", [4096, 4096 + 8], ids=["aligned", "unaligned"])
def test_ingest_assembles_bit_exactly_with_aligned_and_unaligned_tensors(tmp_path, data_start):
    """Big tensors starting on 512-byte boundaries (written straight from the source's mmap) or
    not (through the aligned buffer) both ingest, verify and assemble bit-exactly."""
    rng = np.random.default_rng(0)
    tensors = {
        "a.weight": rng.standard_normal((512, 1024), dtype=np.float32),  # 2 MiB
        "b.weight": rng.standard_normal((3, 1000, 1001), dtype=np.float32),  # 12 MB: two chunks and a tail
        "c.bias": rng.standard_normal(17, dtype=np.float32),
    }
    model = tmp_path / "model"
    spans = _safetensors_at(model / "model.safetensors", tensors, data_start)
    (model / "config.json").write_text(json.dumps({"model_type": "toy"}))
    assert [b % 512 == 0 for b, _ in spans[:2]] == [data_start % 512 == 0] * 2
    with Store.open(tmp_path / "store") as s:
        r = s.ingest(model, name="m")
        assert r.new_objects == 6  # header, three tensors, config.json, the recipe
        assert s.verify().ok
        s.assemble("m", tmp_path / "out")
        for (_begin, _end), a in zip(spans, tensors.values()):
            oid = pb_id("F32", a.shape, a.tobytes())
            assert s.objects.read(oid) == a.tobytes()
    assert sha256_tree(tmp_path / "out") == sha256_tree(model)
