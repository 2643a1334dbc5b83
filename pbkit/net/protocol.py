"""The wire protocol of `pbkit serve` (docs/network.md): endpoint paths, block ids, the headers
that describe a block, and the JSON error body.

    GET  /v1/health                  {"status": "ok", "role": "origin" | "edge"}
    GET  /v1/models                  {"models": [{"name", "kind", "base", "recipe_id", "content_digest", "logical_bytes"}]}
    GET  /v1/models/{name}/recipe    the model's recipe (canonical JSON); ETag = the recipe id
    GET  /v1/blocks/{id}             the block's raw bytes; HEAD, Range; ETag = the block id
    GET  /v1/stats                   counters (an edge adds hits, misses, bytes from upstream, ...)

A block response carries what is needed to re-hash it against its id, so that an edge can
verify blocks it has not seen a recipe for: `X-Pbkit-Kind` (tensor, header, blob), and for a
tensor `X-Pbkit-Dtype` and `X-Pbkit-Shape` (comma-separated dimensions, empty for a scalar).
The id binds dtype, shape and bytes, so these headers cannot make wrong bytes verify.
Errors are `{"error": "<one line>"}` with 400 (malformed id or name), 404 (unknown model, block
or path), 405 (method), 502/504 (an edge whose upstream failed).
"""

from __future__ import annotations

from typing import Any, Mapping

from pbkit.model.safetensors_layout import DTYPE_BITS
from pbkit.store.objects import is_id
from pbkit.store.recipe import BlockInfo

API = "/v1"
HEALTH = f"{API}/health"
MODELS = f"{API}/models"
STATS = f"{API}/stats"
BLOCKS = f"{API}/blocks"
KINDS = ("tensor", "header", "blob", "delta", "recipe")  # delta: a blob id over the delta bytes
MAX_NAME = 200  # as pbkit.store.ingest.check_name


def block_path(block_id: str) -> str:
    return f"{BLOCKS}/{block_id}"


def recipe_path(name: str) -> str:
    from urllib.parse import quote

    return f"{MODELS}/{quote(name, safe='')}/recipe"


def valid_name(name: str) -> bool:
    """A model name as the store accepts it (no control characters, not padded, <= 200 chars)."""
    return bool(name) and name == name.strip() and len(name) <= MAX_NAME and all(ord(c) >= 32 for c in name)


def valid_id(block_id: str) -> bool:
    return is_id(block_id)


def block_headers(info: BlockInfo) -> dict[str, str]:
    """The X-Pbkit-* headers describing a block (ETag and length are set by the server)."""
    out = {"x-pbkit-kind": info.kind}
    if info.kind == "tensor":
        out["x-pbkit-dtype"] = str(info.dtype)
        out["x-pbkit-shape"] = ",".join(str(d) for d in info.shape or ())
    return out


def info_from_headers(block_id: str, nbytes: int, headers: Mapping[str, str]) -> BlockInfo:
    """The BlockInfo a block response describes. Raises ValueError (one line) if the headers are
    missing or malformed."""
    kind = headers.get("x-pbkit-kind", "")
    if kind not in KINDS:
        raise ValueError(f"block {block_id[:16]}: X-Pbkit-Kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind != "tensor":
        return BlockInfo(block_id, nbytes, kind)
    dtype = headers.get("x-pbkit-dtype", "")
    if dtype not in DTYPE_BITS:
        raise ValueError(f"block {block_id[:16]}: X-Pbkit-Dtype {dtype!r} is not a safetensors dtype")
    text = headers.get("x-pbkit-shape", "")
    try:
        shape = tuple(int(d) for d in text.split(",")) if text else ()
    except ValueError:
        raise ValueError(
            f"block {block_id[:16]}: X-Pbkit-Shape {text[:40]!r} is not comma-separated integers"
        ) from None
    if any(d < 0 for d in shape) or len(shape) > 16:
        raise ValueError(f"block {block_id[:16]}: X-Pbkit-Shape {text[:40]!r} is not a tensor shape")
    return BlockInfo(block_id, nbytes, "tensor", dtype, shape)


def error_body(message: str) -> dict[str, Any]:
    return {"error": " ".join(message.split())}
