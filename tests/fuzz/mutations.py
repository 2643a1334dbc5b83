"""Hypothesis strategies that mutate REAL inputs: byte-level edits (flip, delete, insert,
truncate, splice a piece of the input elsewhere, drop in a token that matters to the format) and
structure-aware JSON edits (replace any value with an awkward one: huge, negative, fractional,
non-finite numbers, wrong types, deep nesting; delete or rename keys; swap two values; duplicate
list items). Several edits may be stacked on one input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Pieces of text that matter to JSON/YAML/TOML/safetensors parsers.
TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b",",
    b":",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\x00",
    b"\n",
    b"\r\n",
    b"\xff\xfe",
    b"\xc3",
    b"1e999",
    b"-1",
    b"18446744073709551616",
    b"9" * 5000,
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"[" * 3000,
    b'{"a":' * 3000,
    b"&a",
    b"*a",
    b"!!python/object:os.system",
    b"<<: *a",
    b"---\n",
    b"...",
    b"%YAML 1.1\n",
    b"\t",
    b"[[x]]\n",
    b"x = 1\n",
    b'"""',
    b"'",
    b'"dtype":"F4"',
    b'"shape":[3]',
    b'"data_offsets":[0,1]',
    b'"__metadata__":{}',
    b'"version":2',
    b'"kind":"blob"',
    b'"base":"minilm-base"',
    b'"bytes":-5',
    b'"pbs":[]',
]

_huge = st.sampled_from([2**63 - 1, 2**63, 2**64, 2**64 + 7, -(2**63) - 1, 10**40, -1, 0, 1, 7])
VALUES = st.one_of(
    _huge,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 0.5, -0.0, 1e308]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "..",
            "../../etc/passwd",
            "/abs",
            "a/../b",
            "x\\y",
            "F16",
            "BF16",
            "F4",
            "BOOL",
            "tensor",
            "blob",
            "safetensors",
            "adapter",
            "base",
            "layer",
            "fixed",
            "\n",
            "a\nb",
            "\ud800",
        ]
    ),
    st.none(),
    st.booleans(),
    st.just([]),
    st.just({}),
    st.lists(st.integers(-3, 2**64), max_size=4),
    st.builds(lambda n: [[[]]] * n, st.integers(1, 3)),
    st.builds(lambda n: _nest(n), st.sampled_from([5, 100, 900])),
)


def _nest(n: int) -> Any:
    v: Any = 0
    for _ in range(n):
        v = [v]
    return v


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every node's path (keys/indices from the root), the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, prefix + (i,)))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _apply_json(doc: Any, draw) -> Any:
    paths = _paths(doc)
    path = paths[draw(st.integers(0, len(paths) - 1))]
    op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "rename", "swap", "dup", "int-shift"]))
    if not path:
        return draw(VALUES) if op == "replace" else doc
    parent = _get(doc, path[:-1])
    key = path[-1]
    if op == "replace":
        parent[key] = draw(VALUES)
    elif op == "delete":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        parent[
            draw(
                st.sampled_from(["", "x", "name", "dtype", "__metadata__", "id", key + "_"])
                if isinstance(key, str)
                else st.just("k")
            )
        ] = parent.pop(key)
    elif op == "swap":
        other = paths[draw(st.integers(0, len(paths) - 1))]
        if other and other[: len(path)] != path and path[: len(other)] != other:
            oparent = _get(doc, other[:-1])
            parent[key], oparent[other[-1]] = oparent[other[-1]], parent[key]
    elif op == "dup" and isinstance(parent, list):
        parent.insert(key, json.loads(json.dumps(parent[key])))
    elif op == "int-shift":
        v = parent[key]
        if isinstance(v, int) and not isinstance(v, bool):
            parent[key] = v + draw(st.sampled_from([-8, -2, -1, 1, 2, 4, 8, 2**32, 2**63]))
    return doc


@st.composite
def json_mutants(draw, text: bytes, max_edits: int = 3) -> bytes:
    """A real JSON document with 1-`max_edits` structural edits, serialised again."""
    doc = json.loads(text)
    for _ in range(draw(st.integers(1, max_edits))):
        doc = _apply_json(doc, draw)
    compact = draw(st.booleans())
    return json.dumps(doc, separators=(",", ":") if compact else None, ensure_ascii=draw(st.booleans())).encode(
        "utf-8", "surrogatepass"
    )


@st.composite
def byte_mutants(draw, data: bytes, max_edits: int = 4) -> bytes:
    """`data` with 1-`max_edits` byte-level edits."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        n = len(buf)
        pos = draw(st.integers(0, max(n, 1) * 4)) % (n + 1)  # spread over the whole input
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "splice", "token", "token"]))
        if op == "flip" and n:
            buf[min(pos, n - 1)] = draw(st.integers(0, 255))
        elif op == "delete":
            del buf[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "truncate":
            del buf[pos:]
        elif op == "splice" and n:
            start = draw(st.integers(0, n - 1))
            buf[pos:pos] = buf[start : start + draw(st.integers(1, 256))]
        elif op == "token":
            tok = draw(st.sampled_from(TOKENS))
            if draw(st.booleans()):
                buf[pos : pos + len(tok)] = tok  # overwrite
            else:
                buf[pos:pos] = tok
    return bytes(buf)


def mutants(data: bytes, json_doc: bool = True) -> st.SearchStrategy[bytes]:
    """Structure-aware edits, byte edits, or both stacked (JSON first, then bytes)."""
    options = [byte_mutants(data)]
    if json_doc:
        options += [json_mutants(data), json_mutants(data).flatmap(lambda b: byte_mutants(b, max_edits=2))]
    return st.one_of(*options)
