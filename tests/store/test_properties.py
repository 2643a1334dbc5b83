"""Property test: any safetensors tensor set (dtypes incl. bf16/bool/int8, 0-d and empty tensors,
repeated tensors, metadata) survives ingest -> assemble bit-exactly, from the store and from a
directory of received blocks, and dedups exactly by (dtype, shape, bytes)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import save_st, sha256_tree

from pbkit.store import Store

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int8, torch.uint8, torch.bool, torch.int64, torch.float64]

shapes = st.one_of(
    st.just(()),  # 0-d
    st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple),  # may contain 0: empty
)


@st.composite
def tensor_sets(draw):
    n = draw(st.integers(1, 6))
    out: dict[str, torch.Tensor] = {}
    for i in range(n):
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(shapes)
        seed = draw(st.integers(0, 3))  # few seeds: equal tensors under different names happen
        g = torch.Generator().manual_seed(seed)
        t = torch.randint(0, 2 if dtype == torch.bool else 100, shape, generator=g).to(dtype)
        out[draw(st.from_regex(r"[a-z]{1,6}(\.[a-z0-9]{1,4}){0,2}", fullmatch=True)) + f"_{i}"] = t
    meta = draw(
        st.one_of(st.none(), st.dictionaries(st.text("abc", min_size=1, max_size=3), st.text(max_size=5), max_size=2))
    )
    return out, meta


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=tensor_sets())
def test_any_tensor_set_round_trips(data):
    tensors, meta = data
    work = Path(tempfile.mkdtemp(prefix="pbkit-prop-"))
    try:
        src = work / "model"
        save_st(src / "model.safetensors", tensors, metadata=meta)
        (src / "config.json").write_text("{}")
        with Store.open(work / "store") as store:
            r = store.ingest(src, name="m")
            distinct = {
                (
                    str(t.dtype),
                    tuple(t.shape),
                    t.contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"",
                )
                for t in tensors.values()
            }
            assert r.blocks == len(distinct) + 2  # distinct tensors + header + config
            store.assemble("m", work / "out")
            assert sha256_tree(work / "out") == sha256_tree(src)
            blocks = work / "blocks"
            blocks.mkdir()
            for bid in store.recipe("m").blocks():
                shutil.copyfile(store.objects.path(bid), blocks / bid)
            store.assemble("m", work / "out2", from_blocks=blocks)
            assert sha256_tree(work / "out2") == sha256_tree(src)
            assert store.verify().ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
