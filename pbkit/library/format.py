"""The PB library: which parameter blocks exist, how big each is, and which models use which.

This is the contract between `pbkit` (which produces it from a store, a plan or a synthetic
generator) and `delivery`/`learning` (which consume it). The on-disk form is one JSON file;
the schema is documented in docs/library-format.md and versioned by `LIBRARY_VERSION`.

Minimal keys relied on by scripts: top-level `pbs` (each with `id` and `bytes`) and `models`
(each with `name` and `pbs`, the list of its PB ids). Everything else is optional on load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pbkit.common.fs import atomic_write_json
from pbkit.errors import PbkitError

LIBRARY_FORMAT = "pbkit-pb-library"
# Version 2 adds `references` to PBs (delta PBs). A library without references is still written
# as version 1, so older readers load it; every version up to this one loads.
LIBRARY_VERSION = 2
GRANULARITIES = ("tensor", "layer", "fixed")


class LibraryError(PbkitError, ValueError):
    """A PB library file or object is malformed or inconsistent."""


def _name(value: Any) -> str:
    """A name or id for a one-line message: as is when it is plain printable text, else its repr."""
    return value if isinstance(value, str) and value.isprintable() and len(value) <= 200 else repr(value)[:200]


@dataclass(frozen=True)
class PBEntry:
    """One parameter block: a content id, its size in bytes, a human label and member tensors.

    `members`: for a library exported from a store, the store block ids the PB is made of, in
    order (`id[start:end]` for a slice), so a device can be handed the store's bytes; empty when
    the PB is itself one store block, or for planned and synthetic libraries.

    `references`: for a delta PB (a lossless delta against other bytes, docs/delta-blocks.md),
    the PBs holding those bytes. A delta PB is useful only together with its references, so
    every model that lists a delta PB lists its references too (checked by `validate`); the
    simulator's demand sets (`membership`) therefore include them."""

    id: str
    bytes: int
    label: str = ""
    tensors: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    """One model: the set of PBs it needs (order is the model's own; no duplicates)."""

    name: str
    pbs: tuple[str, ...]
    id: str = ""
    kind: str = ""
    base: str | None = None


@dataclass
class PBLibrary:
    pbs: list[PBEntry]
    models: list[ModelEntry]
    granularity: str = "tensor"
    source: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- derived views
    @property
    def pb_ids(self) -> list[str]:
        return [pb.id for pb in self.pbs]

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def pb_index(self) -> dict[str, int]:
        return {pb.id: j for j, pb in enumerate(self.pbs)}

    def pb_sizes(self) -> np.ndarray:
        """Sizes s_j in bytes, shape (J,), int64."""
        return np.array([pb.bytes for pb in self.pbs], dtype=np.int64)

    def membership(self) -> np.ndarray:
        """Boolean matrix (I models, J PBs): entry (i, j) is True when model i needs PB j."""
        index = self.pb_index()
        matrix = np.zeros((len(self.models), len(self.pbs)), dtype=bool)
        for i, model in enumerate(self.models):
            matrix[i, [index[p] for p in model.pbs]] = True
        return matrix

    def model_bytes(self) -> np.ndarray:
        """Total bytes of each model, shape (I,)."""
        return self.membership().astype(np.int64) @ self.pb_sizes()

    def sharing(self) -> dict[str, Any]:
        """Derived figures: logical bytes (sum over models), unique bytes, shared bytes."""
        member = self.membership()
        sizes = self.pb_sizes()
        users = member.sum(axis=0)
        logical = int(member.astype(np.int64).sum(axis=0) @ sizes)
        unique = int(sizes[users > 0].sum())
        shared = int(sizes[users > 1].sum())
        out = {
            "models": len(self.models),
            "pbs": len(self.pbs),
            "logical_bytes": logical,
            "unique_bytes": unique,
            "shared_pb_bytes": shared,
            "dedup_ratio": (logical / unique) if unique else 1.0,
            "pbs_shared_by_2_or_more": int((users > 1).sum()),
        }
        deltas = [pb for pb in self.pbs if pb.references]
        if deltas:  # (only then: libraries without delta PBs keep their exact bytes)
            out["delta_pbs"] = len(deltas)
            out["delta_pb_bytes"] = sum(pb.bytes for pb in deltas)
        return out

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise LibraryError(f"granularity {self.granularity!r} is not one of {', '.join(GRANULARITIES)}")
        if not self.pbs:
            raise LibraryError("library has no PBs")
        if not self.models:
            raise LibraryError("library has no models")
        seen: set[str] = set()
        for pb in self.pbs:
            if not isinstance(pb.id, str) or not pb.id:
                raise LibraryError(f"PB id {pb.id!r} is not a non-empty string")
            if pb.id in seen:
                raise LibraryError(f"PB {_name(pb.id)} is listed twice")
            seen.add(pb.id)
            if isinstance(pb.bytes, bool) or not isinstance(pb.bytes, int) or pb.bytes < 0:
                raise LibraryError(f"PB {_name(pb.id)}: bytes {pb.bytes!r} is not a non-negative integer")
            if pb.bytes >= 2**63:  # sizes are int64 arrays downstream
                raise LibraryError(f"PB {_name(pb.id)}: bytes {pb.bytes} is not below 2**63")
        refs = {pb.id: pb.references for pb in self.pbs if pb.references}
        for pid, targets in refs.items():
            for r in targets:
                if not isinstance(r, str) or r not in seen or r == pid:
                    raise LibraryError(f"PB {_name(pid)}: reference {_name(r)} is not another PB of this library")
        for pid in refs:  # a reference chain must end
            chain, todo = {pid}, list(refs[pid])
            while todo:
                r = todo.pop()
                if r == pid:
                    raise LibraryError(f"PB {_name(pid)}: its references loop back to it")
                if r not in chain:
                    chain.add(r)
                    todo.extend(refs.get(r, ()))
        names: set[str] = set()
        for model in self.models:
            if not isinstance(model.name, str) or not model.name:
                raise LibraryError(f"model name {model.name!r} is not a non-empty string")
            if model.name in names:
                raise LibraryError(f"model {_name(model.name)} is listed twice")
            names.add(model.name)
            if not model.pbs:
                raise LibraryError(f"model {_name(model.name)} has no PBs")
            if not all(isinstance(p, str) for p in model.pbs):
                raise LibraryError(f"model {_name(model.name)}: pbs is not a list of PB ids (strings)")
            if len(set(model.pbs)) != len(model.pbs):
                raise LibraryError(f"model {_name(model.name)} lists a PB twice")
            for pb_id in model.pbs:
                if pb_id not in seen:
                    raise LibraryError(f"model {_name(model.name)} needs PB {_name(pb_id)}, which is not in pbs")
            if refs:
                listed = set(model.pbs)
                for pb_id in model.pbs:
                    for r in refs.get(pb_id, ()):
                        if r not in listed:
                            raise LibraryError(
                                f"model {_name(model.name)} lists delta PB {_name(pb_id)} but not its reference "
                                f"{_name(r)} (a delta PB is useful only with its reference)"
                            )
        for model in self.models:
            if model.base is not None and (not isinstance(model.base, str) or model.base not in names):
                raise LibraryError(f"model {_name(model.name)}: base {_name(model.base)} is not a model here")
        # A base chain must end (an adapter's base is a model, whose base is ..., not itself).
        bases = {m.name: m.base for m in self.models}
        for model in self.models:
            chain = [model.name]
            nxt = model.base
            while nxt is not None:
                if nxt in chain:
                    raise LibraryError(
                        f"model {_name(model.name)}: base chain loops ({' -> '.join(map(_name, chain + [nxt]))})"
                    )
                chain.append(nxt)
                nxt = bases[nxt]

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        sizes = {pb.id: pb.bytes for pb in self.pbs}
        return {
            "format": LIBRARY_FORMAT,
            "version": LIBRARY_VERSION if any(pb.references for pb in self.pbs) else 1,
            "granularity": self.granularity,
            "synthetic": self.synthetic,
            "source": self.source,
            "pbs": [
                {
                    "id": pb.id,
                    "bytes": pb.bytes,
                    "label": pb.label,
                    "tensors": list(pb.tensors),
                    **({"members": list(pb.members)} if pb.members else {}),
                    **({"references": list(pb.references)} if pb.references else {}),
                }
                for pb in self.pbs
            ],
            "models": [
                {
                    "name": m.name,
                    "id": m.id,
                    "kind": m.kind,
                    "base": m.base,
                    "pbs": list(m.pbs),
                    "bytes": int(sum(sizes[p] for p in m.pbs)),
                }
                for m in self.models
            ],
            "sharing": self.sharing(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "library") -> "PBLibrary":
        if not isinstance(data, dict):
            raise LibraryError(f"{where}: top level is not a JSON object")
        fmt = data.get("format", LIBRARY_FORMAT)
        if fmt != LIBRARY_FORMAT:
            raise LibraryError(f"{where}: format {fmt!r} is not {LIBRARY_FORMAT!r}")
        version = data.get("version", LIBRARY_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise LibraryError(f"{where}: version {version!r} is not a positive integer")
        if version > LIBRARY_VERSION:
            raise LibraryError(f"{where}: version {version!r} is newer than this pbkit reads ({LIBRARY_VERSION})")
        for key in ("pbs", "models"):
            if not isinstance(data.get(key), list):
                raise LibraryError(f"{where}: missing list {key!r}")
        for key, kind in (("granularity", str), ("synthetic", bool), ("source", dict)):
            if key in data and data[key] is not None and not isinstance(data[key], kind):
                raise LibraryError(f"{where}: {key} {data[key]!r} is not a {kind.__name__}")
        for j, p in enumerate(data["pbs"]):
            if isinstance(p, dict) and not (
                isinstance(p.get("label", ""), str)
                and isinstance(p.get("tensors", []), list)
                and all(isinstance(t, str) for t in p.get("tensors", []))
            ):
                raise LibraryError(f"{where}: pbs[{j}]: label must be a string and tensors a list of strings")
            if isinstance(p, dict) and not (
                isinstance(p.get("members", []), list) and all(isinstance(t, str) for t in p.get("members", []))
            ):
                raise LibraryError(f"{where}: pbs[{j}]: members must be a list of store block ids (strings)")
            if isinstance(p, dict) and not (
                isinstance(p.get("references", []), list) and all(isinstance(t, str) for t in p.get("references", []))
            ):
                raise LibraryError(f"{where}: pbs[{j}]: references must be a list of PB ids (strings)")
        for i, m in enumerate(data["models"]):
            if isinstance(m, dict) and not isinstance(m.get("pbs"), list):
                raise LibraryError(f"{where}: models[{i}] ({m.get('name')!r}): pbs is not a list of PB ids")
        try:
            pbs = [
                PBEntry(
                    id=p["id"],
                    bytes=p["bytes"],
                    label=p.get("label", ""),
                    tensors=tuple(p.get("tensors", ())),
                    members=tuple(p.get("members", ())),
                    references=tuple(p.get("references", ())),
                )
                for p in data["pbs"]
            ]
            models = [
                ModelEntry(
                    name=m["name"],
                    pbs=tuple(m["pbs"]),
                    id=m.get("id", ""),
                    kind=m.get("kind", ""),
                    base=m.get("base"),
                )
                for m in data["models"]
            ]
        except (KeyError, TypeError) as exc:
            raise LibraryError(f"{where}: an entry lacks a required key ({exc})") from None
        try:
            lib = cls(
                pbs=pbs,
                models=models,
                granularity=data.get("granularity", "tensor"),
                source=data.get("source", {}) or {},
                synthetic=bool(data.get("synthetic", False)),
            )
        except LibraryError as exc:
            raise LibraryError(f"{where}: {exc}") from None
        # `bytes` of a model is derived; if a file states it, it must agree with its PBs.
        sizes = dict(zip(lib.pb_ids, (int(b) for b in lib.pb_sizes())))
        for m in data["models"]:
            stated = m.get("bytes")
            if stated is not None:
                actual = sum(sizes[p] for p in m["pbs"])
                if stated != actual:
                    raise LibraryError(
                        f"{where}: model {_name(m['name'])}: bytes {stated!r} disagrees with the sum of its PBs ({actual})"
                    )
        return lib

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file, fsync, rename) with the umask's file mode.

        Raises:
            OSError: the file cannot be written; the error names `path` (not the temporary file),
                or the ancestor that is a file (NotADirectoryError).
        """
        return atomic_write_json(path, self.to_dict(), indent=1)


def load_library(path: str | os.PathLike[str]) -> PBLibrary:
    """Load and validate a PB library JSON file; errors name the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LibraryError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LibraryError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise LibraryError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise LibraryError(f"{path}: invalid JSON ({str(exc).splitlines()[0][:120]})") from None
    except RecursionError:
        raise LibraryError(f"{path}: invalid JSON (nested too deeply)") from None
    return PBLibrary.from_dict(data, where=str(path))
