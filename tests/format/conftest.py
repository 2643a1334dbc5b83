"""Shared fixtures for the input-side tests (safetensors reader, digests, sources, pickles)."""

from __future__ import annotations

import pytest
import torch

from pbkit.zoo.bundled import bundled_model_dir

torch.set_num_threads(1)  # the machine is shared; these tests are I/O- and hash-bound anyway


@pytest.fixture(scope="session")
def bundled_dir():
    return bundled_model_dir()


def raw_safetensors(header: dict | str | bytes, data: bytes = b"", pad_to: int = 1, length: int | None = None) -> bytes:
    """Bytes of a safetensors file built by hand: 8-byte LE length, header text, data.

    `header` may be a dict (serialised compactly), or text/bytes used verbatim (to craft bad or
    non-canonical headers); `pad_to` pads the header with spaces as safetensors does (to 8);
    `length` overrides the length field (to lie about it).
    """
    import json
    import struct

    if isinstance(header, dict):
        text = json.dumps(header, separators=(",", ":")).encode()
    elif isinstance(header, str):
        text = header.encode()
    else:
        text = header
    text += b" " * (-len(text) % pad_to)
    n = len(text) if length is None else length
    return struct.pack("<Q", n) + text + data


@pytest.fixture
def make_st(tmp_path):
    """Write a hand-built safetensors file under tmp_path and return its path."""
    counter = iter(range(10**6))

    def make(header, data=b"", name=None, **kw):
        path = tmp_path / (name or f"f{next(counter)}.safetensors")
        path.write_bytes(raw_safetensors(header, data, **kw))
        return path

    return make
