"""The one dtype table agrees with torch and with safetensors' own writer."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save

from pbkit.model.dtypes import DTYPE_BITS, DTYPE_SIZES, FLOAT_CODES, TORCH_TO_ST, st_code
from pbkit.model.legacy_pickle import TORCH_TO_ST_DTYPE


@pytest.mark.parametrize("name", sorted(n for n in TORCH_TO_ST if hasattr(torch, n)))
def test_codes_and_widths_match_torch_and_safetensors(name):
    dtype = getattr(torch, name)
    code = st_code(str(dtype))
    assert DTYPE_BITS[code] == torch.empty(0, dtype=dtype).element_size() * 8
    assert TORCH_TO_ST_DTYPE[dtype] == code
    try:
        raw = save({"t": torch.zeros(2, dtype=dtype)})
    except Exception:  # this safetensors cannot write it: nothing to compare
        return
    assert f'"dtype":"{code}"' in raw[8:].decode("utf-8", "replace")


def test_float_codes_are_byte_sized_and_unknown_names_raise():
    assert [DTYPE_SIZES[c] for c in FLOAT_CODES] == [8, 4, 2, 2]
    with pytest.raises(KeyError):
        st_code("torch.quint8")
