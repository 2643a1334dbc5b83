"""Recipes: how to rebuild every file of one model, byte for byte, from blocks.

A recipe lists every file of a model with its size and SHA-256. A safetensors file is its
verbatim header (a blob block) followed by its tensors' PBs in file-offset order; every other
file is one whole-file blob block. The recipe is serialised as canonical JSON (sorted keys, no
whitespace); its id is the `blob_id` of those bytes, so a recipe is itself a content-addressed
object and the id changes whenever anything about the model changes. See docs/on-disk-format.md.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from pbkit.errors import PbkitError
from pbkit.model.digest import blob_id
from pbkit.model.safetensors_layout import DTYPE_BITS, tensor_nbytes

RECIPE_FORMAT = "pbkit-recipe"
# Version 2 adds delta chains to tensor entries. A recipe without deltas is still written as
# version 1, byte for byte as before, so its id (and a re-ingest of a stored model) is unchanged.
RECIPE_VERSION = 2
MAX_DELTA_CHAIN = 4  # links from a tensor to the exactly stored PB its bytes are rebuilt from
KINDS = ("base", "full-finetune", "partial-finetune", "adapter")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class RecipeError(PbkitError, ValueError):
    """A stored recipe is malformed or of an unknown version."""


@dataclass(frozen=True)
class DeltaStep:
    """One link of a delta chain: delta block `block` (`nbytes` stored bytes, a blob id) turns
    the bytes of tensor PB `ref` into the bytes of the link's target PB (pbkit.store.delta)."""

    block: str
    nbytes: int
    ref: str


@dataclass(frozen=True)
class TensorRef:
    """One tensor of a safetensors file, in file-offset order; `pb` is its PB id.

    `delta` is empty when the PB is stored exactly. Otherwise the PB is stored as a chain of
    delta blocks: link 0 rebuilds `pb` from the bytes of PB `delta[0].ref`, link i rebuilds
    `delta[i-1].ref` from `delta[i].ref`, and `delta[-1].ref` (the root) is stored exactly. All
    PBs of a chain have this tensor's dtype and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    pb: str
    nbytes: int
    delta: tuple[DeltaStep, ...] = ()


@dataclass(frozen=True)
class FileRecipe:
    """One file of a model: `kind` is "safetensors" (header_pb + tensors) or "blob" (blob_pb)."""

    path: str
    size: int
    sha256: str
    kind: str
    header_pb: str | None = None
    tensors: tuple[TensorRef, ...] = ()
    blob_pb: str | None = None

    def block_ids(self) -> list[str]:
        """Block ids in the order their bytes appear in the file (repeats kept): the header and
        the tensors' PB ids, whether a PB is stored exactly or as a delta chain."""
        if self.kind == "safetensors":
            return [self.header_pb] + [t.pb for t in self.tensors]  # type: ignore[list-item]
        return [self.blob_pb]  # type: ignore[list-item]


@dataclass(frozen=True)
class BaseRef:
    """The base model an adapter or fine-tune belongs to, pinned by recipe id and content digest."""

    name: str
    recipe_id: str
    content_digest: str


@dataclass(frozen=True)
class BlockInfo:
    """What is known about one block from a recipe: its size, how to re-hash it, what it holds."""

    id: str
    nbytes: int
    kind: str  # "tensor" | "header" | "blob"
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    tensors: tuple[str, ...] = ()  # "file:tensor" names (or the file path for blobs/headers)
    # kind "delta": the PB it rebuilds and the PB it needs as reference (same dtype and shape)
    target: str | None = None
    ref: str | None = None
    # a tensor PB stored as a delta chain (Recipe.logical_blocks only): how to rebuild it
    chain: tuple[DeltaStep, ...] = ()


@dataclass(frozen=True)
class Recipe:
    id: str
    name: str
    kind: str
    base: BaseRef | None
    source: dict[str, Any]
    files: tuple[FileRecipe, ...]

    # ---------------------------------------------------------------- derived views
    @property
    def logical_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def content_digest(self) -> str:
        return content_digest(self.files)

    def blocks(self) -> dict[str, BlockInfo]:
        """Every distinct stored block the model needs (recipe object excluded), in first-use
        order: headers, blobs, tensor PBs stored exactly and, for a tensor stored as a delta
        chain, each link's delta block (kind "delta") and the chain's exactly stored root PB.
        This is what the store keeps for the model (`refs`) and what a device must receive."""
        out: dict[str, BlockInfo] = {}
        for f in self.files:
            if f.kind != "safetensors":
                assert f.blob_pb is not None
                _add(out, BlockInfo(f.blob_pb, f.size, "blob", tensors=(f.path,)))
                continue
            assert f.header_pb is not None
            _add(out, BlockInfo(f.header_pb, _header_size(f), "header", tensors=(f"{f.path}:<header>",)))
            for t in f.tensors:
                where = f"{f.path}:{t.name}"
                target = t.pb
                for i, step in enumerate(t.delta):
                    held = (where,) if i == 0 else (f"{where} (reference)",)
                    _add(out, BlockInfo(step.block, step.nbytes, "delta", t.dtype, t.shape, held, target, step.ref))
                    target = step.ref
                held = (where,) if not t.delta else (f"{where} (reference)",)
                _add(out, BlockInfo(target, t.nbytes, "tensor", t.dtype, t.shape, held))
        return out

    def logical_blocks(self) -> dict[str, BlockInfo]:
        """Every distinct block the model's files are made of, in first-use order: headers,
        blobs and tensor PBs (with `chain` set for a PB stored as a delta chain)."""
        out: dict[str, BlockInfo] = {}
        for f in self.files:
            if f.kind == "safetensors":
                assert f.header_pb is not None
                _add(out, BlockInfo(f.header_pb, _header_size(f), "header", tensors=(f"{f.path}:<header>",)))
                for t in f.tensors:
                    info = BlockInfo(t.pb, t.nbytes, "tensor", t.dtype, t.shape, (f"{f.path}:{t.name}",), chain=t.delta)
                    _add(out, info)
            else:
                assert f.blob_pb is not None
                _add(out, BlockInfo(f.blob_pb, f.size, "blob", tensors=(f.path,)))
        return out

    @property
    def has_deltas(self) -> bool:
        return any(t.delta for f in self.files for t in f.tensors)

    def block_bytes(self) -> int:
        return sum(b.nbytes for b in self.blocks().values())

    # ---------------------------------------------------------------- serialisation
    def body(self) -> dict[str, Any]:
        """The JSON body (without the id, which is the digest of this body)."""
        return {
            "format": RECIPE_FORMAT,
            "version": RECIPE_VERSION if self.has_deltas else 1,
            "name": self.name,
            "kind": self.kind,
            "base": None
            if self.base is None
            else {"name": self.base.name, "recipe_id": self.base.recipe_id, "content_digest": self.base.content_digest},
            "source": self.source,
            "files": [_file_to_json(f) for f in self.files],
        }

    def canonical_json(self) -> bytes:
        return canonical(self.body())

    @classmethod
    def build(
        cls, name: str, kind: str, base: BaseRef | None, source: dict[str, Any], files: tuple[FileRecipe, ...]
    ) -> "Recipe":
        """Make a recipe and compute its id from its canonical JSON."""
        if kind not in KINDS:
            raise ValueError(f"recipe kind {kind!r} is not one of {KINDS}")
        draft = cls(id="", name=name, kind=kind, base=base, source=source, files=files)
        return cls(id=blob_id(draft.canonical_json()), name=name, kind=kind, base=base, source=source, files=files)

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "recipe") -> "Recipe":
        """Parse and check a stored recipe; RecipeError (one line, naming `where`) if malformed.

        Every field is type-checked here, so that code using a recipe (assembly, need, show)
        never meets a wrong type: ids are 64-hex block ids, sizes non-negative integers, each
        tensor's byte count matches its dtype and shape, paths are unique plain relative paths."""
        try:
            obj = json.loads(data)
            if not isinstance(obj, dict):
                raise RecipeError(f"{where}: malformed recipe (not a JSON object)")
            if obj.get("format") != RECIPE_FORMAT:
                raise RecipeError(f"{where}: format {_short(obj.get('format'))} is not {RECIPE_FORMAT!r}")
            version = obj.get("version")
            if isinstance(version, bool) or not isinstance(version, int) or version > RECIPE_VERSION:
                raise RecipeError(f"{where}: recipe version {_short(version)} is newer than this pbkit reads")
            base = obj["base"]
            if base is not None:
                _need(isinstance(base, dict), "base is not an object or null")
                base = BaseRef(
                    _str(base["name"], "base name"),
                    _hex(base["recipe_id"], "base recipe_id"),
                    _hex(base["content_digest"], "base content_digest"),
                )
            _need(isinstance(obj["source"], dict), "source is not an object")
            _need(isinstance(obj["files"], list), "files is not a list")
            files = tuple(_file_from_json(f) for f in obj["files"])
            _check_paths(files)
            recipe = cls.build(
                name=_str(obj["name"], "name"),
                kind=obj["kind"],
                base=base,
                source=obj["source"],
                files=files,
            )
        except RecipeError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecipeError(
                f"{where}: malformed recipe ({exc.__class__.__name__}: {_short(str(exc), 200)[1:-1]})"
            ) from None
        except RecursionError:
            raise RecipeError(f"{where}: malformed recipe (nested too deeply)") from None
        return recipe


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 (equal content -> equal bytes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_digest(files: tuple[FileRecipe, ...]) -> str:
    """Name- and source-independent digest of a model's files (paths, sizes, SHA-256s)."""
    return blob_id(canonical([[f.path, f.size, f.sha256] for f in sorted(files, key=lambda f: f.path)]))


def _header_size(f: FileRecipe) -> int:
    return f.size - sum(t.nbytes for t in f.tensors)


def _add(out: dict[str, BlockInfo], info: BlockInfo) -> None:
    prev = out.get(info.id)
    if prev is None:
        out[info.id] = info
    else:
        out[info.id] = dataclasses.replace(prev, tensors=prev.tensors + info.tensors)


def _file_to_json(f: FileRecipe) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path, "size": f.size, "sha256": f.sha256, "kind": f.kind}
    if f.kind == "safetensors":
        out["header_pb"] = f.header_pb
        out["tensors"] = [_tensor_to_json(t) for t in f.tensors]
    else:
        out["blob_pb"] = f.blob_pb
    return out


def _tensor_to_json(t: TensorRef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "pb": t.pb, "nbytes": t.nbytes}
    if t.delta:  # only then: a recipe without deltas keeps its version-1 bytes and id
        out["delta"] = [{"block": s.block, "bytes": s.nbytes, "ref": s.ref} for s in t.delta]
    return out


def _check_relative_path(path: Any) -> str:
    """A recipe's file path must stay inside the model directory it is assembled into."""
    parts = path.split("/") if isinstance(path, str) else None
    if not parts or path.startswith("/") or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise ValueError(f"file path {path!r} is not a plain relative path inside the model directory")
    return path


def _short(value: Any, limit: int = 60) -> str:
    """repr of a value for a one-line message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _need(ok: bool, problem: str) -> None:
    if not ok:
        raise ValueError(problem)


def _str(value: Any, what: str) -> str:
    _need(isinstance(value, str) and value != "", f"{what} {_short(value)} is not a non-empty string")
    return value


def _hex(value: Any, what: str) -> str:
    _need(isinstance(value, str) and _HEX64.match(value) is not None, f"{what} {_short(value)} is not 64 hex digits")
    return value


def _count(value: Any, what: str) -> int:
    _need(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"{what} {_short(value)} is not a non-negative integer",
    )
    return value


def _tensor_from_json(t: Any, path: str) -> TensorRef:
    _need(isinstance(t, dict), f"file {path!r}: a tensor entry is not an object")
    name = t["name"]
    _need(isinstance(name, str), f"file {path!r}: tensor name {_short(name)} is not a string")
    dtype, shape = t["dtype"], t["shape"]
    _need(isinstance(dtype, str) and dtype in DTYPE_BITS, f"tensor {name!r}: unknown dtype {_short(dtype)}")
    _need(isinstance(shape, list), f"tensor {name!r}: shape {_short(shape)} is not a list")
    dims = tuple(_count(d, f"tensor {name!r}: dimension") for d in shape)
    nbytes = _count(t["nbytes"], f"tensor {name!r}: nbytes")
    _need(nbytes == tensor_nbytes(dtype, dims), f"tensor {name!r}: nbytes {nbytes} does not match {dtype} {list(dims)}")
    pb = _hex(t["pb"], f"tensor {name!r}: pb")
    return TensorRef(name, dtype, dims, pb, nbytes, _chain_from_json(t.get("delta", []), name, pb))


def _chain_from_json(links: Any, name: str, pb: str) -> tuple[DeltaStep, ...]:
    _need(isinstance(links, list), f"tensor {name!r}: delta {_short(links)} is not a list")
    _need(
        len(links) <= MAX_DELTA_CHAIN, f"tensor {name!r}: delta chain of {len(links)} links exceeds {MAX_DELTA_CHAIN}"
    )
    chain = []
    seen = {pb}
    for link in links:
        _need(isinstance(link, dict), f"tensor {name!r}: a delta link is not an object")
        step = DeltaStep(
            _hex(link["block"], f"tensor {name!r}: delta block"),
            _count(link["bytes"], f"tensor {name!r}: delta bytes"),
            _hex(link["ref"], f"tensor {name!r}: delta ref"),
        )
        _need(step.ref not in seen, f"tensor {name!r}: delta chain loops at {step.ref[:16]}")
        seen.add(step.ref)
        chain.append(step)
    return tuple(chain)


def _file_from_json(d: Any) -> FileRecipe:
    _need(isinstance(d, dict), "a file entry is not an object")
    path = _check_relative_path(d["path"])
    size = _count(d["size"], f"file {path!r}: size")
    sha = _hex(d["sha256"], f"file {path!r}: sha256")
    if d["kind"] == "safetensors":
        _need(isinstance(d["tensors"], list), f"file {path!r}: tensors is not a list")
        tensors = tuple(_tensor_from_json(t, path) for t in d["tensors"])
        # the header block (8-byte length + JSON) is what remains of the file after its tensors
        _need(size - sum(t.nbytes for t in tensors) >= 8, f"file {path!r}: size {size} leaves no room for a header")
        return FileRecipe(
            path=path,
            size=size,
            sha256=sha,
            kind="safetensors",
            header_pb=_hex(d["header_pb"], f"file {path!r}: header_pb"),
            tensors=tensors,
        )
    if d["kind"] == "blob":
        return FileRecipe(
            path=path, size=size, sha256=sha, kind="blob", blob_pb=_hex(d["blob_pb"], f"file {path!r}: blob_pb")
        )
    raise ValueError(f"file {path!r}: unknown kind {_short(d['kind'])}")


def _check_paths(files: tuple[FileRecipe, ...]) -> None:
    """No path twice, and no file where another needs a directory ("a" and "a/b")."""
    paths = [f.path for f in files]
    seen = set(paths)
    _need(len(seen) == len(paths), "a file path is listed twice")
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            _need("/".join(parts[:i]) not in seen, f"file path {p!r} is inside file {'/'.join(parts[:i])!r}")
