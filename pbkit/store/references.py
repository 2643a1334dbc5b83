"""Delta blocks at ingest: find a tensor's reference in the base chain, and decide per tensor
whether it is stored exactly or as a delta block against that reference.

A tensor's reference is the tensor of the same name (a leading wrapper segment such as
`bert.` or `model.` may differ) and the same dtype and shape in the nearest model of the base
chain (the base, its base, ...) whose own chain leaves room for one more link
(`MAX_DELTA_CHAIN`). Its bytes are read from the store and checked against its PB id (the
content check) before a delta is computed; a reference that is missing or corrupt is simply
not used. The delta is kept only when it saves at least `min_saving` of the tensor's bytes.
See docs/delta-blocks.md.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pbkit.errors import PbkitError
from pbkit.model.digest import blob_id, pb_id
from pbkit.store import delta as _delta
from pbkit.store.assemble import BlockUnavailable, StoreBlocks, rebuild_tensor
from pbkit.store.index import Index
from pbkit.store.objects import FileRegion, ObjectDir
from pbkit.store.recipe import MAX_DELTA_CHAIN, BlockInfo, DeltaStep, Recipe, TensorRef

DEFAULT_MIN_SAVING = 0.10
_STRIP = 2  # leading name segments that may differ between a fine-tune and its base


class DeltaPolicyError(PbkitError, ValueError):
    """A delta option is out of range."""


@dataclass(frozen=True)
class DeltaPolicy:
    """Store a tensor as a delta block when that saves at least `min_saving` of its bytes."""

    min_saving: float = DEFAULT_MIN_SAVING

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_saving < 1.0:
            raise DeltaPolicyError(f"delta minimum saving {self.min_saving!r} is not in [0, 1)")


def name_keys(name: str) -> list[str]:
    """The name, then the name without its first one or two segments (`bert.encoder.x` ->
    `encoder.x` -> `x`), never stripping a numeric segment (a layer index)."""
    keys = [name]
    rest = name
    for _ in range(_STRIP):
        head, dot, tail = rest.partition(".")
        if not dot or not tail or head.isdigit():
            break
        rest = tail
        keys.append(rest)
    return keys


def base_chain(index: Index, base: str | None, limit: int = 16) -> list[Recipe]:
    """The recipes of `base`, its base, ... (nearest first), while each is stored under the
    recipe id its child pinned."""
    out: list[Recipe] = []
    name, pinned = base, None
    while name is not None and len(out) < limit:
        row = index.model(name)
        if row is None or (pinned is not None and row.recipe_id != pinned):
            break
        text = index.recipe_json(name)
        if text is None:
            break
        recipe = Recipe.from_json(text, where=f"recipe of {name!r}")
        if any(r.id == recipe.id for r in out):
            break
        out.append(recipe)
        name, pinned = (recipe.base.name, recipe.base.recipe_id) if recipe.base else (None, None)
    return out


class ReferenceFinder:
    """Candidate references for the tensors of a model being ingested, from its base chain."""

    def __init__(self, chain: list[Recipe]) -> None:
        # per ancestor: ({full name: tensor}, {shortened name: tensor, or None if ambiguous})
        self.tables: list[tuple[dict[str, TensorRef], dict[str, TensorRef | None]]] = []
        self.chains: dict[str, tuple[DeltaStep, ...]] = {}  # PB stored as a delta chain -> chain
        for recipe in chain:
            full: dict[str, TensorRef] = {}
            short: dict[str, TensorRef | None] = {}
            for f in recipe.files:
                for t in f.tensors:
                    if t.delta:
                        self.chains.setdefault(t.pb, t.delta)
                    full.setdefault(t.name, t)
                    for k in name_keys(t.name)[1:]:
                        short[k] = t if k not in short else None
            self.tables.append((full, short))

    def learn_chains(self, recipe: Recipe) -> None:
        """Also reuse the delta chains of `recipe` (the stored version of a model re-ingested)."""
        for f in recipe.files:
            for t in f.tensors:
                if t.delta:
                    self.chains.setdefault(t.pb, t.delta)

    def stored_chain(self, pb: str) -> tuple[DeltaStep, ...] | None:
        """The delta chain of a PB the base chain already stores as a delta, if any."""
        return self.chains.get(pb)

    def candidate(self, name: str, dtype: str, shape: tuple[int, ...]) -> TensorRef | None:
        """The nearest ancestor's tensor that may serve as this tensor's reference."""
        if not _delta.supports(dtype):
            return None
        keys = name_keys(name)
        for full, short in self.tables:
            for k in keys:
                t = full.get(k) or short.get(k)
                if t is not None and t.dtype == dtype and t.shape == shape and len(t.delta) < MAX_DELTA_CHAIN:
                    return t
        return None

    def wants(self, name: str, dtype: str, shape: tuple[int, ...], pb: str) -> bool:
        """Whether a tensor's storage must wait for `plan` (it may become or reuse a delta)."""
        return pb in self.chains or self.candidate(name, dtype, shape) is not None


@dataclass(frozen=True)
class Deferred:
    """A tensor whose storage was held back during hashing: its entry and where its bytes are."""

    tensor: TensorRef
    region: FileRegion


@dataclass
class DeltaOutcome:
    chains: dict[str, tuple[DeltaStep, ...]]  # PB id -> chain, for PBs stored as deltas
    exact: list[tuple[str, FileRegion]]  # PBs to store exactly after all
    blocks: list[tuple[str, bytes]]  # new delta blocks (id, bytes)
    tensor_bytes: int = 0  # bytes of the tensors stored as deltas
    delta_bytes: int = 0  # their delta blocks' bytes


class _FileMaps:
    """Read-only mmaps of the source files, one per file, shared by the encoding threads."""

    def __init__(self) -> None:
        self.maps: dict[str, mmap.mmap] = {}
        self.lock = threading.Lock()

    def region(self, region: FileRegion) -> memoryview:
        key = os.fspath(region.path)
        with self.lock:
            m = self.maps.get(key)
            if m is None:
                with open(key, "rb") as f:
                    m = self.maps[key] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return memoryview(m)[region.offset : region.offset + region.length]

    def close(self) -> None:
        for m in self.maps.values():
            m.close()


def _reference_bytes(objects: ObjectDir, ref: TensorRef) -> Any:
    """The reference's bytes from the store, checked against its PB id; None if unusable."""
    info = BlockInfo(ref.pb, ref.nbytes, "tensor", ref.dtype, ref.shape, chain=ref.delta)
    try:
        if ref.delta:
            return rebuild_tensor(StoreBlocks(objects), info)
        with open(objects.path(ref.pb), "rb") as f:
            data = f.read()
    except (BlockUnavailable, FileNotFoundError):
        return None
    if len(data) != ref.nbytes or pb_id(ref.dtype, ref.shape, data) != ref.pb:
        return None
    return data


def plan(
    deferred: list[Deferred], finder: ReferenceFinder, objects: ObjectDir, policy: DeltaPolicy, exact_ids: set[str]
) -> DeltaOutcome:
    """Decide, for each held-back tensor, delta or exact; compute the new delta blocks.

    A PB already stored exactly (`objects`) or staged exactly in this ingest (`exact_ids`) stays
    exact; a PB the base chain stores as a delta reuses that chain; otherwise a delta against
    the candidate reference is computed (two tensors at a time) and kept if it saves enough."""
    out = DeltaOutcome(chains={}, exact=[], blocks=[])
    todo: dict[str, tuple[Deferred, TensorRef]] = {}
    for d in deferred:
        t = d.tensor
        if t.pb in out.chains or t.pb in todo or t.pb in exact_ids:
            continue
        if objects.exists(t.pb):
            exact_ids.add(t.pb)
            continue
        reuse = finder.stored_chain(t.pb)
        if reuse is not None:
            out.chains[t.pb] = reuse
            continue
        ref = finder.candidate(t.name, t.dtype, t.shape)
        if ref is None or ref.pb == t.pb:  # (an identical reference stored exactly would exist)
            out.exact.append((t.pb, d.region))
            exact_ids.add(t.pb)
            continue
        todo[t.pb] = (d, ref)

    with contextlib.closing(_FileMaps()) as maps, ThreadPoolExecutor(2, thread_name_prefix="pbkit-delta") as pool:

        def one(item: tuple[Deferred, TensorRef]) -> tuple[Deferred, TensorRef, bytes | None]:
            d, ref = item
            ref_bytes = _reference_bytes(objects, ref)
            if ref_bytes is None:
                return d, ref, None
            with maps.region(d.region) as target:
                return d, ref, _delta.encode(target, ref_bytes, d.tensor.dtype)

        for d, ref, block in pool.map(one, todo.values()):
            t = d.tensor
            if block is None or len(block) > (1.0 - policy.min_saving) * t.nbytes:
                out.exact.append((t.pb, d.region))
                exact_ids.add(t.pb)
                continue
            bid = blob_id(block)
            out.blocks.append((bid, block))
            out.chains[t.pb] = (DeltaStep(bid, len(block), ref.pb),) + ref.delta
            out.tensor_bytes += t.nbytes
            out.delta_bytes += len(block)
    return out
