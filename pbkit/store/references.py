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

import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
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


def _encode_against(objects: ObjectDir, ref: TensorRef, target: Any) -> bytes | None:
    """The delta block of `target` against `ref`, whose bytes are read from the store and checked
    against its PB id first (the content check); None if the reference is missing or corrupt."""
    if ref.delta:  # the reference is itself a delta: rebuilt (and verified) in memory
        info = BlockInfo(ref.pb, ref.nbytes, "tensor", ref.dtype, ref.shape, chain=ref.delta)
        try:
            return _delta.encode(target, rebuild_tensor(StoreBlocks(objects), info), ref.dtype)
        except BlockUnavailable:
            return None
    try:
        f = open(objects.path(ref.pb), "rb")
    except FileNotFoundError:
        return None
    with f:
        if os.fstat(f.fileno()).st_size != ref.nbytes:
            return None
        if ref.nbytes == 0:
            return _delta.encode(target, b"", ref.dtype) if pb_id(ref.dtype, ref.shape, b"") == ref.pb else None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if pb_id(ref.dtype, ref.shape, m) != ref.pb:
                return None
            return _delta.encode(target, m, ref.dtype)


class DeltaPlanner:
    """Decides, tensor by tensor as the ingest hashes them, delta or exact, and computes the
    delta blocks on two helper threads meanwhile (encoding overlaps the hashing and copying).

    `offer` is called for each tensor right after it is hashed: False means "store it exactly
    now" (no candidate reference, or already stored exactly); True means the planner holds it.
    `finish` waits for the encodings and returns the outcome: a held PB whose delta saves at
    least `policy.min_saving` gets a chain, a PB the base chain stores as a delta reuses that
    chain, the rest is to be stored exactly after all."""

    def __init__(self, finder: ReferenceFinder, objects: ObjectDir, policy: DeltaPolicy) -> None:
        self.finder, self.objects, self.policy = finder, objects, policy
        self.maps = _FileMaps()
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="pbkit-delta")
        self.held: dict[str, tuple[Deferred, TensorRef | None, Future[bytes | None] | None]] = {}

    def offer(self, t: TensorRef, region: FileRegion) -> bool:
        if t.pb in self.held:
            return True
        if not self.finder.wants(t.name, t.dtype, t.shape, t.pb) or self.objects.exists(t.pb):
            return False
        reuse = self.finder.stored_chain(t.pb)
        if reuse is not None:
            self.held[t.pb] = (Deferred(t, region), None, None)
            return True
        ref = self.finder.candidate(t.name, t.dtype, t.shape)
        if ref is None or ref.pb == t.pb:
            return False
        self.held[t.pb] = (Deferred(t, region), ref, self.pool.submit(self._encode, ref, region))
        return True

    def _encode(self, ref: TensorRef, region: FileRegion) -> bytes | None:
        with self.maps.region(region) as target:
            return _encode_against(self.objects, ref, target)

    def finish(self, exact_ids: set[str]) -> DeltaOutcome:
        """The outcome; PBs in `exact_ids` (staged exactly by this ingest meanwhile) stay exact."""
        out = DeltaOutcome(chains={}, exact=[], blocks=[])
        for pid, (d, ref, job) in self.held.items():
            t = d.tensor
            if ref is None:  # the base chain stores this very PB as a delta
                out.chains[pid] = self.finder.stored_chain(pid) or ()
                continue
            assert job is not None
            block = job.result()
            if pid in exact_ids:
                continue
            if block is None or len(block) > (1.0 - self.policy.min_saving) * t.nbytes:
                out.exact.append((pid, d.region))
                continue
            bid = blob_id(block)
            out.blocks.append((bid, block))
            out.chains[pid] = (DeltaStep(bid, len(block), ref.pb),) + ref.delta
            out.tensor_bytes += t.nbytes
            out.delta_bytes += len(block)
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.maps.close()
