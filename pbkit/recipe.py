"""Recipes: how to rebuild every file of one model, byte for byte, from blocks.

A recipe lists every file of a model with its size and SHA-256. A safetensors file is its
verbatim header (a blob block) followed by its tensors' PBs in file-offset order; every other
file is one whole-file blob block. The recipe is serialised as canonical JSON (sorted keys, no
whitespace); its id is the `blob_id` of those bytes, so a recipe is itself a content-addressed
object and the id changes whenever anything about the model changes. See docs/on-disk-format.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pbkit.digest import blob_id
from pbkit.errors import PbkitError

RECIPE_FORMAT = "pbkit-recipe"
RECIPE_VERSION = 1
KINDS = ("base", "full-finetune", "partial-finetune", "adapter")


class RecipeError(PbkitError, ValueError):
    """A stored recipe is malformed or of an unknown version."""


@dataclass(frozen=True)
class TensorRef:
    """One tensor of a safetensors file, in file-offset order; `pb` is its PB id."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    pb: str
    nbytes: int


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
        """Block ids in the order their bytes appear in the file (repeats kept)."""
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
        """Every distinct block the model needs (recipe object excluded), in first-use order."""
        out: dict[str, BlockInfo] = {}
        for f in self.files:
            if f.kind == "safetensors":
                assert f.header_pb is not None
                _add(out, BlockInfo(f.header_pb, _header_size(f), "header", tensors=(f"{f.path}:<header>",)))
                for t in f.tensors:
                    _add(out, BlockInfo(t.pb, t.nbytes, "tensor", t.dtype, t.shape, (f"{f.path}:{t.name}",)))
            else:
                assert f.blob_pb is not None
                _add(out, BlockInfo(f.blob_pb, f.size, "blob", tensors=(f.path,)))
        return out

    def block_bytes(self) -> int:
        return sum(b.nbytes for b in self.blocks().values())

    # ---------------------------------------------------------------- serialisation
    def body(self) -> dict[str, Any]:
        """The JSON body (without the id, which is the digest of this body)."""
        return {
            "format": RECIPE_FORMAT,
            "version": RECIPE_VERSION,
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
        try:
            obj = json.loads(data)
            if obj.get("format") != RECIPE_FORMAT:
                raise RecipeError(f"{where}: format {obj.get('format')!r} is not {RECIPE_FORMAT!r}")
            if not isinstance(obj.get("version"), int) or obj["version"] > RECIPE_VERSION:
                raise RecipeError(f"{where}: recipe version {obj.get('version')!r} is newer than this pbkit reads")
            base = obj["base"]
            files = tuple(_file_from_json(f) for f in obj["files"])
            recipe = cls.build(
                name=obj["name"],
                kind=obj["kind"],
                base=None if base is None else BaseRef(base["name"], base["recipe_id"], base["content_digest"]),
                source=obj["source"],
                files=files,
            )
        except RecipeError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecipeError(f"{where}: malformed recipe ({exc.__class__.__name__}: {exc})") from None
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
        out[info.id] = BlockInfo(prev.id, prev.nbytes, prev.kind, prev.dtype, prev.shape, prev.tensors + info.tensors)


def _file_to_json(f: FileRecipe) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path, "size": f.size, "sha256": f.sha256, "kind": f.kind}
    if f.kind == "safetensors":
        out["header_pb"] = f.header_pb
        out["tensors"] = [
            {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "pb": t.pb, "nbytes": t.nbytes}
            for t in f.tensors
        ]
    else:
        out["blob_pb"] = f.blob_pb
    return out


def _check_relative_path(path: Any) -> str:
    """A recipe's file path must stay inside the model directory it is assembled into."""
    parts = path.split("/") if isinstance(path, str) else None
    if not parts or path.startswith("/") or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise ValueError(f"file path {path!r} is not a plain relative path inside the model directory")
    return path


def _file_from_json(d: dict[str, Any]) -> FileRecipe:
    _check_relative_path(d["path"])
    if d["kind"] == "safetensors":
        return FileRecipe(
            path=d["path"],
            size=int(d["size"]),
            sha256=d["sha256"],
            kind="safetensors",
            header_pb=d["header_pb"],
            tensors=tuple(
                TensorRef(t["name"], t["dtype"], tuple(int(x) for x in t["shape"]), t["pb"], int(t["nbytes"]))
                for t in d["tensors"]
            ),
        )
    if d["kind"] == "blob":
        return FileRecipe(path=d["path"], size=int(d["size"]), sha256=d["sha256"], kind="blob", blob_pb=d["blob_pb"])
    raise ValueError(f"file {d.get('path')!r}: unknown kind {d['kind']!r}")
