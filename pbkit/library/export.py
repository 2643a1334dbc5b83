"""Export a store's models as a PB library (the format in pbkit.library, docs/library-format.md).

Rules (documented in docs/library-format.md):
- A model's weight PBs are its safetensors tensors grouped at the chosen granularity
  (`pbkit.library.grouping.group_tensors`, in checkpoint order, shards in path order). Group ids depend
  only on member content, so two models share a PB exactly when every member tensor is identical.
- Non-tensor bytes (safetensors headers, config, tokenizer, README, adapter_config) form one small
  "files" PB per model by default (`files="model"`); `files="each"` keeps every header and file as
  its own PB (so identical tokenizer files are shared), `files="none"` leaves them out. A legacy
  weight file (`pytorch_model.bin`, ...) stored as a whole-file block is always its own PB.
- An adapter's PB list is its base's PB list followed by its own PBs: what a device must hold to
  run the adapter is base + adapter, and caching must see that the base's PBs are shared.
- A tensor the store keeps as a delta chain (docs/delta-blocks.md) enters the grouping as its
  first delta block (its stored bytes); the PB holding it is a delta PB whose `references` are
  the PBs holding the next link of the chain (preferably those of the model's own base chain,
  else any exported model's, else a PB of its own). A model's PB list includes the references
  of its delta PBs, transitively: a delta PB is useful only with its reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import blake3

from pbkit.errors import PbkitError
from pbkit.library import ModelEntry, PBEntry, PBLibrary
from pbkit.library.grouping import group_tensors, parse_member
from pbkit.store.recipe import FileRecipe, Recipe, TensorRef

FILES_MODES = ("model", "each", "none")
_FILES_DOMAIN = b"pbkit-files-v1\n"
# Whole-file blocks that hold weights (pickled checkpoints), never folded into the files PB.
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".msgpack", ".gguf")


class ExportError(PbkitError, ValueError):
    """A library cannot be exported (empty store, unknown model, bad option)."""


@dataclass(frozen=True)
class _PB:
    id: str
    bytes: int
    label: str
    tensors: tuple[str, ...]
    members: tuple[str, ...] = ()  # store block ids when the PB is not itself one block
    nexts: tuple[str, ...] = ()  # store blocks its delta blocks need as references
    references: tuple[str, ...] = ()  # the PBs holding `nexts` (set by library_from_recipes)


def _header_bytes(f: FileRecipe) -> int:
    return f.size - sum(t.nbytes for t in f.tensors)


def _files_pbs(recipe: Recipe, mode: str) -> list[_PB]:
    """The PBs of a model's non-tensor bytes, per `mode`; weight blobs always stand alone."""
    weights: list[_PB] = []
    small: list[_PB] = []
    for f in recipe.files:
        if f.kind == "safetensors":
            assert f.header_pb is not None
            small.append(_PB(f.header_pb, _header_bytes(f), f"header:{f.path}", (f"{f.path}:<header>",)))
        else:
            assert f.blob_pb is not None
            pb = _PB(f.blob_pb, f.size, f"file:{f.path}", (f.path,))
            (weights if f.path.lower().endswith(_WEIGHT_SUFFIXES) else small).append(pb)
    if mode == "none" or not small:
        return weights
    if mode == "each":
        return weights + small
    # One PB for all of them: id from the sorted member ids, so identical file sets share it.
    h = blake3.blake3(_FILES_DOMAIN)
    h.update("\n".join(sorted(pb.id for pb in small)).encode())
    members = tuple(t for pb in small for t in pb.tensors)
    return weights + [
        _PB(h.hexdigest(), sum(pb.bytes for pb in small), f"files:{recipe.name}", members, tuple(pb.id for pb in small))
    ]


def _stored_unit(t: TensorRef, nexts: dict[str, str]) -> TensorRef:
    """What the store keeps first for a tensor: itself, or the first delta block of its chain
    (then `nexts` learns which stored block that delta needs next)."""
    if not t.delta:
        return t
    first = t.delta[0]
    nexts[first.block] = t.delta[1].block if len(t.delta) > 1 else first.ref
    return TensorRef(t.name, t.dtype, t.shape, first.block, first.nbytes)


def _own_pbs(recipe: Recipe, granularity: str, max_bytes: int | None, files: str) -> list[_PB]:
    tensors = [t for f in sorted(recipe.files, key=lambda f: f.path) if f.kind == "safetensors" for t in f.tensors]
    nexts: dict[str, str] = {}
    units = [_stored_unit(t, nexts) for t in tensors]
    # A group's members are the store's tensor blocks (or slices): the link a device needs to
    # be handed the stored bytes of a layer or fixed-size PB (delivery/device.py).
    out = []
    for g in group_tensors(units, granularity, max_bytes):
        members = g.members if g.members != (g.id,) else ()
        blocks = [parse_member(m)[0] for m in (members or (g.id,))]
        needs = tuple(dict.fromkeys(nexts[b] for b in blocks if b in nexts))
        out.append(_PB(g.id, g.bytes, g.label, g.tensors, members, needs))
    return out + _files_pbs(recipe, files)


def _chain_units(recipes: Sequence[Recipe]) -> dict[str, tuple[int, str | None, str]]:
    """{stored block of any delta chain: (bytes, the block it needs next or None, label)}."""
    out: dict[str, tuple[int, str | None, str]] = {}
    for r in recipes:
        for f in r.files:
            for t in f.tensors:
                for i, step in enumerate(t.delta):
                    nxt = t.delta[i + 1].block if i + 1 < len(t.delta) else step.ref
                    out.setdefault(step.block, (step.nbytes, nxt, f"delta:{t.name}"))
                if t.delta:
                    out.setdefault(t.delta[-1].ref, (t.nbytes, None, f"tensor:{t.name}"))
    return out


def _dedup(pbs: Iterable[_PB]) -> list[_PB]:
    seen: set[str] = set()
    out = []
    for pb in pbs:
        if pb.id not in seen:
            seen.add(pb.id)
            out.append(pb)
    return out


def _base_name(recipe: Recipe, by_id: dict[str, str]) -> str | None:
    """The exported name of the recipe's pinned base (by recipe id: a name may be reused)."""
    if recipe.base is None:
        return None
    return by_id.get(recipe.base.recipe_id)


def library_from_recipes(
    recipes: Sequence[Recipe],
    granularity: str = "tensor",
    max_bytes: int | None = None,
    files: str = "model",
    source: dict[str, Any] | None = None,
) -> PBLibrary:
    """Build a PB library from recipes (models in the order given)."""
    if files not in FILES_MODES:
        raise ExportError(f"files mode {files!r} is not one of {', '.join(FILES_MODES)}")
    if not recipes:
        raise ExportError("no models to export (the store is empty)")
    by_name = {r.name: r for r in recipes}
    by_id = {r.id: r.name for r in recipes}
    own = {r.name: _own_pbs(r, granularity, max_bytes, files) for r in recipes}
    warnings: list[str] = []
    bases: dict[str, str | None] = {}
    for r in recipes:
        bases[r.name] = _base_name(r, by_id)
        if r.kind == "adapter" and r.base is not None and bases[r.name] is None:
            warnings.append(
                f"{r.name}: base {r.base.name} (recipe {r.base.recipe_id[:12]}) is not in the store; "
                "its PBs are not included"
            )
        elif r.kind == "adapter" and r.base is None:
            warnings.append(f"{r.name}: adapter stored without a base; only its own PBs are listed")

    full: dict[str, list[_PB]] = {}
    units = _chain_units(recipes)
    holders: dict[str, dict[str, list[str]]] = {}  # model -> {stored block: PBs of its own holding it}
    for name, pbs_ in own.items():
        held: dict[str, list[str]] = {}
        for pb in pbs_:
            for m in pb.members or (pb.id,):
                held.setdefault(parse_member(m)[0], []).append(pb.id)
        holders[name] = held
    any_holder: dict[str, list[str]] = {}
    for held in holders.values():
        for b, ids in held.items():
            any_holder.setdefault(b, ids)
    own_by_id = {p.id: p for lst in own.values() for p in lst}
    extra: dict[str, _PB] = {}  # delta-chain blocks no exported model's PB holds: PBs of their own
    resolved: dict[str, _PB] = {}

    def base_line(name: str) -> list[str]:
        line, nxt = [], bases.get(name)
        while nxt is not None and nxt not in line:
            line.append(nxt)
            nxt = bases.get(nxt)
        return line

    def holder_of(block: str, line: list[str]) -> list[str]:
        for m in line:
            if block in holders[m]:
                return holders[m][block]
        if block in any_holder:
            return any_holder[block]
        if block not in extra:
            nbytes, nxt, label = units.get(block, (0, None, f"block:{block[:16]}"))
            extra[block] = _PB(block, nbytes, label, (), (), (nxt,) if nxt else ())
        return [block]

    def with_refs(pb: _PB, line: list[str]) -> _PB:
        if pb.id not in resolved:
            refs = tuple(dict.fromkeys(h for b in pb.nexts for h in holder_of(b, line) if h != pb.id))
            resolved[pb.id] = _PB(pb.id, pb.bytes, pb.label, pb.tensors, pb.members, pb.nexts, refs)
        return resolved[pb.id]

    def closure(name: str, pbs_: list[_PB]) -> list[_PB]:
        """The PBs plus, transitively, the references of their delta PBs."""
        line = base_line(name)
        out = [with_refs(pb, line) for pb in pbs_]
        seen = {pb.id for pb in out}
        i = 0
        while i < len(out):
            for ref in out[i].references:
                if ref not in seen:
                    seen.add(ref)
                    src = extra.get(ref) or own_by_id[ref]
                    out.append(with_refs(src, line))
            i += 1
        return out

    def needed(name: str, chain: tuple[str, ...] = ()) -> list[_PB]:
        if name in chain:
            raise ExportError(f"model {name}: base chain loops ({' -> '.join(chain + (name,))})")
        if name not in full:
            r = by_name[name]
            base = bases[name]
            if r.kind == "adapter" and base is not None:
                full[name] = _dedup(needed(base, chain + (name,)) + closure(name, own[name]))
            else:
                full[name] = _dedup(closure(name, own[name]))
        return full[name]

    pbs: dict[str, _PB] = {}
    models: list[ModelEntry] = []
    for r in recipes:
        entries = needed(r.name)
        for pb in entries:
            prev = pbs.get(pb.id)
            if prev is None:
                pbs[pb.id] = pb
            elif prev.bytes != pb.bytes:  # a content id with two sizes means a broken store
                raise ExportError(f"PB {pb.id}: {prev.bytes} bytes in one model, {pb.bytes} in {r.name}")
        models.append(
            ModelEntry(name=r.name, pbs=tuple(p.id for p in entries), id=r.id, kind=r.kind, base=bases[r.name])
        )
    src = dict(source or {})
    src.update({"kind": "store", "files": files, "max_bytes": max_bytes})
    if warnings:
        src["warnings"] = warnings
    return PBLibrary(
        pbs=[
            PBEntry(
                id=p.id, bytes=p.bytes, label=p.label, tensors=p.tensors, members=p.members, references=p.references
            )
            for p in pbs.values()
        ],
        models=models,
        granularity=granularity,
        source=src,
        synthetic=False,
    )


def export_library(
    store: Any,
    granularity: str = "tensor",
    max_bytes: int | None = None,
    files: str = "model",
    models: Sequence[str] | None = None,
) -> PBLibrary:
    """The PB library of a `pbkit.store.Store` (all models, or `models` and their bases)."""
    names = list(store.list_models())
    if models is not None:
        missing = [m for m in models if m not in set(names)]
        if missing:
            raise ExportError(f"model {missing[0]} is not in the store")
        wanted = list(models)
        # Pull in bases so adapter entries can reference them.
        i = 0
        while i < len(wanted):
            r = store.recipe(wanted[i])
            if r.base is not None and r.base.name in names and r.base.name not in wanted:
                wanted.append(r.base.name)
            i += 1
        names = [n for n in names if n in set(wanted)]
    recipes = [store.recipe(n) for n in names]
    root = getattr(store, "root", None)
    return library_from_recipes(
        recipes,
        granularity=granularity,
        max_bytes=max_bytes,
        files=files,
        source={"store": str(root) if root is not None else None},
    )
