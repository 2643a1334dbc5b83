"""Cut a model into PBs and store them, and the digest pass (every PB id, nothing written).

Order, for crash safety: (1) resolve and validate every file (safetensors layouts, shard index,
adapter config, pickles) - bad input writes nothing; (2) hash: PB ids with BLAKE3 straight from
an mmap of each file, SHA-256 of each file in a second thread (or from the stat-keyed cache when
the file is unchanged since a previous ingest); (3) decide kind and base and build the recipe;
(4) write the objects not yet present (each atomic); (5) publish the model in one index
transaction. A kill before (5) leaves only complete, unreferenced objects (and maybe temp files);
rerunning the ingest skips what is already there. Steps (2) and (4) run as one pass: a block's
bytes are copied into a temporary file right after they are hashed, and the temporary files are
made durable and linked into place together after (3).

With a delta policy (`delta=`), a tensor that has a candidate reference in the base chain is
held back from copying while it is hashed; after the pass, each is stored as a delta block or
exactly (pbkit.store.references), before (4), and the source files are re-checked once more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

from pbkit.errors import PbkitError
from pbkit.model.digest import PARALLEL_MIN_BYTES, blob_id, file_sha256, pb_id
from pbkit.model.layout import ModelLayout, classify, inspect_layout
from pbkit.model.safetensors_layout import SafetensorsLayout, TensorEntry, read_layout
from pbkit.model.sources import ResolvedSource, resolve_source, safe_join
from pbkit.store.index import Index, ModelExistsError, StatKey, UnknownModelError
from pbkit.store.objects import FileRegion, ObjectDir
from pbkit.store.recipe import BaseRef, BlockInfo, DeltaStep, FileRecipe, Recipe, TensorRef, content_digest
from pbkit.store.references import DeltaPlanner, DeltaPolicy, ReferenceFinder, base_chain

# progress(phase, done, total): phase "hash" and "write" count bytes; "publish" is 0/1 then 1/1.
ProgressFn = Callable[[str, int, int], None]


class IngestError(PbkitError):
    """An ingest request is invalid (bad model name, unknown base)."""


class SourceChangedError(PbkitError):
    """A source file was modified while it was being hashed and copied."""


@dataclass(frozen=True)
class FileDigest:
    """One file's recipe plus where each of its blocks' bytes come from."""

    recipe: FileRecipe
    sources: tuple[tuple[str, bytes | FileRegion], ...]  # (block id, bytes or file region)
    realpath: str
    stat_key: StatKey


@dataclass
class DigestReport:
    """Result of the digest pass: every block id of a model, nothing written."""

    root: Path
    files: list[FileDigest]
    seconds: float
    file_bytes: int
    tensors: int
    blocks: int  # distinct blocks (tensor PBs, headers, whole-file blobs)
    block_bytes: int  # bytes of distinct blocks

    @property
    def throughput(self) -> float:
        return self.file_bytes / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "files": len(self.files),
            "file_bytes": self.file_bytes,
            "tensors": self.tensors,
            "blocks": self.blocks,
            "block_bytes": self.block_bytes,
            "seconds": self.seconds,
        }


@dataclass
class IngestResult:
    name: str
    recipe_id: str
    kind: str
    base: str | None
    files: int
    blocks: int
    logical_bytes: int
    new_objects: int
    new_bytes: int
    unchanged: bool  # the same recipe was already stored under this name
    seconds: float
    warnings: list[str] = field(default_factory=list)
    delta_tensors: int = 0  # tensor PBs stored as delta chains (new or reused)
    delta_tensor_bytes: int = 0  # their tensor bytes
    delta_new_bytes: int = 0  # bytes of the delta blocks computed by this ingest

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stat_key(path: Path) -> tuple[str, StatKey]:
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, StatKey(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[memoryview]:
    """A read-only memoryview of the whole file (empty files cannot be mmapped)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            yield memoryview(b"")
            return
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        mv = memoryview(m)
        try:
            yield mv
        finally:
            mv.release()
            m.close()


def _pb_ids_in_order(
    mv: memoryview, tensors: Sequence[TensorEntry], pool: ThreadPoolExecutor
) -> Iterator[tuple[TensorEntry, str]]:
    """(tensor, PB id) in file order, each yielded as soon as it is known (so its copy can start
    while the rest of the file is hashed). Same ids as `pb_ids(mv, tensors, pool)`: small tensors
    are hashed two at a time on `pool` (a model of many small tensors would otherwise pay
    BLAKE3's per-call overhead on one core), big ones here with BLAKE3's own threads."""

    def one(t: TensorEntry) -> str:
        with mv[t.begin : t.end] as part:
            return pb_id(t.dtype, t.shape, part)

    small = {i: pool.submit(one, t) for i, t in enumerate(tensors) if t.end - t.begin < PARALLEL_MIN_BYTES}
    try:
        for i, t in enumerate(tensors):
            fut = small.get(i)
            yield t, (fut.result() if fut is not None else one(t))
    finally:
        wait(small.values())  # no thread may still hold a slice of mv when the caller unmaps it


def _digest_each(
    src: ResolvedSource,
    paths: dict[str, Path],
    total: int,
    layouts: dict[str, SafetensorsLayout],
    sha: Callable[[str, StatKey, Path], "Future[str] | str"] | None,
    progress: ProgressFn | None,
    stage: Callable[[str, "bytes | FileRegion"], Any] | None,
    hash_pool: ThreadPoolExecutor,
    pending: list[tuple[int, Future[str]]],
    defer: Callable[[TensorRef, FileRegion], bool] | None = None,
) -> list[FileDigest]:
    """One pass over the files in order: ids of every block, staging each for copying."""
    done = 0
    out: list[FileDigest] = []
    for rel in src.files:
        path = paths[rel]
        real, key = _stat_key(path)
        real_path = Path(real)
        sha_val: Future[str] | str = sha(real, key, path) if sha is not None else ""
        layout = layouts.get(rel)
        with _mapped(path) as mv:
            if layout is not None:
                if len(mv) != layout.file_size or mv[: layout.data_start] != layout.header:
                    raise SourceChangedError(f"{path}: file changed since its header was read; run again")
                header_pb = blob_id(layout.header)
                tensors = []
                sources: list[tuple[str, bytes | FileRegion]] = [(header_pb, layout.header)]
                if stage is not None:
                    stage(header_pb, layout.header)
                with contextlib.closing(_pb_ids_in_order(mv, layout.tensors, hash_pool)) as ids:
                    for t, pid in ids:
                        tref = TensorRef(t.name, t.dtype, t.shape, pid, t.nbytes)
                        tensors.append(tref)
                        region = FileRegion(real_path, t.begin, t.nbytes)
                        sources.append((pid, region))
                        if stage is not None and not (defer is not None and defer(tref, region)):
                            stage(pid, region)  # copied while the next tensors are hashed
                recipe = FileRecipe(rel, key.size, "", "safetensors", header_pb=header_pb, tensors=tuple(tensors))
            else:
                bid = blob_id(mv)
                region = FileRegion(real_path, 0, key.size)
                sources = [(bid, region)]
                if stage is not None:
                    stage(bid, region)
                recipe = FileRecipe(rel, key.size, "", "blob", blob_pb=bid)
        if isinstance(sha_val, Future):
            pending.append((len(out), sha_val))
        else:
            recipe = _with_sha(recipe, sha_val)
        out.append(FileDigest(recipe, tuple(sources), real, key))
        done += key.size
        if progress is not None:
            progress("hash", done, total)
    return out


def _digest_files(
    src: ResolvedSource,
    layouts: dict[str, SafetensorsLayout],
    sha: Callable[[str, StatKey, Path], "Future[str] | str"] | None,
    progress: ProgressFn | None,
    stage: Callable[[str, "bytes | FileRegion"], Any] | None = None,
    settle: Callable[[], None] | None = None,
    defer: Callable[[TensorRef, FileRegion], bool] | None = None,
) -> list[FileDigest]:
    """PB/blob ids of every file; `sha` returns (or schedules) each file's SHA-256; `stage` is
    given each block right after it is hashed (while its bytes are hot in the page cache) and
    may copy it in the background; `settle` waits for those copies."""
    total = 0
    paths = {}
    for rel in src.files:
        paths[rel] = src.root / rel  # every path was checked with safe_join by _validate
        total += os.path.getsize(paths[rel])
    pending: list[tuple[int, Future[str]]] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pbkit-hash") as hash_pool:
        out = _digest_each(src, paths, total, layouts, sha, progress, stage, hash_pool, pending, defer)
    for i, fut in pending:
        fd = out[i]
        out[i] = FileDigest(_with_sha(fd.recipe, fut.result()), fd.sources, fd.realpath, fd.stat_key)
    if settle is not None:
        settle()  # every staged copy has read its source before the files are re-checked
    _check_unchanged(out, src.root)
    return out


def _check_unchanged(files: list[FileDigest], root: Path) -> None:
    """Ids, SHA-256, copies and deltas must all come from the same bytes."""
    for fd in files:
        if _stat_key(Path(fd.realpath))[1] != fd.stat_key:
            raise SourceChangedError(f"{root / fd.recipe.path}: file changed while it was being read; run again")


def _with_chains(fd: FileDigest, chains: dict[str, tuple[DeltaStep, ...]]) -> FileDigest:
    """The file's recipe with the delta chain of every tensor stored as a delta."""
    if fd.recipe.kind != "safetensors" or not any(t.pb in chains for t in fd.recipe.tensors):
        return fd
    tensors = tuple(dataclasses.replace(t, delta=chains[t.pb]) if t.pb in chains else t for t in fd.recipe.tensors)
    return dataclasses.replace(fd, recipe=dataclasses.replace(fd.recipe, tensors=tensors))


def _with_sha(r: FileRecipe, sha: str) -> FileRecipe:
    return FileRecipe(r.path, r.size, sha, r.kind, r.header_pb, r.tensors, r.blob_pb)


def _validate(src: ResolvedSource) -> tuple[ModelLayout, dict[str, SafetensorsLayout]]:
    layout = inspect_layout(src)
    layouts = {rel: read_layout(safe_join(src.root, rel)) for rel in layout.safetensors}
    return layout, layouts


def digest_pass(
    source: str | os.PathLike[str], revision: str | None = None, progress: ProgressFn | None = None
) -> DigestReport:
    """Compute every PB id of a model without writing anything (a dry run of ingest)."""
    t0 = time.perf_counter()
    src = resolve_source(source, revision=revision)
    _, layouts = _validate(src)
    files = _digest_files(src, layouts, sha=None, progress=progress)
    return _report(src.root, files, time.perf_counter() - t0)


def _report(root: Path, files: list[FileDigest], seconds: float) -> DigestReport:
    distinct: dict[str, int] = {}
    tensors = 0
    for f in files:
        tensors += len(f.recipe.tensors)
        for bid, s in f.sources:
            distinct[bid] = len(s) if isinstance(s, bytes) else s.length
    return DigestReport(
        root=root,
        files=files,
        seconds=seconds,
        file_bytes=sum(f.recipe.size for f in files),
        tensors=tensors,
        blocks=len(distinct),
        block_bytes=sum(distinct.values()),
    )


def default_name(src: ResolvedSource) -> str:
    if src.origin.get("type") == "hub":
        return str(src.origin["repo_id"])
    return src.root.name


def check_name(name: str) -> str:
    if not name or name != name.strip() or any(ord(c) < 32 for c in name) or len(name) > 200:
        raise IngestError(f"model name {name!r} is empty, padded with spaces, too long or has control characters")
    return name


def _resolve_base(index: Index, name: str, base: str | None, layout: ModelLayout) -> tuple[str | None, list[str]]:
    """The stored base model's name, from --base or the model's config hints."""
    warnings: list[str] = []
    if base is not None:
        if index.model(base) is None:
            raise UnknownModelError(f"base model {base!r} is not in the store (ingest it first)")
        return base, warnings
    hints = layout.base_hints()
    rows = index.models()
    for hint in hints:
        hint_path = (
            os.path.abspath(os.path.expanduser(hint))
            if os.path.isabs(os.path.expanduser(hint)) or os.path.exists(hint)
            else None
        )
        for row in rows:
            if row.name == name:
                continue
            if (
                row.name == hint
                or row.source.get("repo_id") == hint
                or (hint_path is not None and row.source.get("path") == hint_path)
            ):
                return row.name, warnings
    if layout.adapter is not None:
        hint = layout.adapter.base_model
        warnings.append(
            f"adapter {name!r}: its base ({hint!r} in adapter_config.json) is not in the store and no --base "
            "was given; ingested without a base"
            if hint
            else f"adapter {name!r}: adapter_config.json names no base and no --base was given; ingested without a base"
        )
    return None, warnings


def ingest(
    index: Index,
    objects: ObjectDir,
    source: str | os.PathLike[str],
    name: str | None = None,
    base: str | None = None,
    revision: str | None = None,
    progress: ProgressFn | None = None,
    write_lock: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    cache_dir: str | os.PathLike[str] | None = None,
    delta: DeltaPolicy | None = None,
) -> IngestResult:
    """Ingest one model (see the module docstring for the crash-safe order).

    With `delta`, tensors that differ from their reference in the base chain are stored as delta
    blocks where that saves at least `delta.min_saving` (docs/delta-blocks.md).

    Raises IngestError (bad name, own base), UnknownModelError (--base not stored),
    ModelExistsError, SourceChangedError, the model readers' format errors, OSError."""
    t0 = time.perf_counter()
    src = resolve_source(source, revision=revision, cache_dir=cache_dir)
    name = check_name(name if name is not None else default_name(src))
    layout, layouts = _validate(src)  # (1) nothing is written on bad input

    existing = index.model(name)
    planner: DeltaPlanner | None = None
    if delta is not None:  # references come from the base chain, known before hashing
        pre_base = base
        if pre_base is None and existing is not None and existing.base is not None:
            pre_base = existing.base
        if pre_base is None:
            pre_base = _resolve_base(index, name, None, layout)[0]
        if pre_base is not None and pre_base != name and index.model(pre_base) is not None:
            finder = ReferenceFinder(base_chain(index, pre_base))
            if existing is not None:  # a re-ingest reuses its stored deltas instead of recomputing them
                finder.learn_chains(Recipe.from_json(index.recipe_json(name) or "", where=f"recipe of {name!r}"))
            planner = DeltaPlanner(finder, objects, delta)

    # (2)+(4) in one pass: each block is hashed straight from an mmap of its file, then (if not
    # yet in the store) copied into a temporary file of a write batch; SHA-256 of each file runs
    # in a helper thread meanwhile (hashlib and blake3 release the GIL). Nothing is visible in
    # the store until the batch commits. The shared lock keeps gc from removing the temp files.
    with write_lock(), objects.batch() as batch, contextlib.ExitStack() as stack:
        if planner is not None:
            stack.callback(planner.close)
        # SHA-256 is sequential within a file and the slowest hash here (~2 GB/s per core), so
        # the files of a sharded checkpoint are hashed by as many threads as there are cores.
        workers = max(1, min(len(src.files), (os.cpu_count() or 2) - 1, 8))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbkit-sha") as pool:
            fresh: set[str] = set()  # files whose SHA-256 was computed, not taken from the cache

            def sha(real: str, key: StatKey, path: Path) -> Future[str] | str:
                cached = index.cached_sha(real, key)
                if cached is not None:
                    return cached
                fresh.add(real)
                return pool.submit(file_sha256, path)

            files = _digest_files(
                src,
                layouts,
                sha=sha,
                progress=progress,
                stage=batch.add,
                settle=batch.wait_copies,
                defer=planner.offer if planner is not None else None,
            )

        chains: dict[str, tuple[DeltaStep, ...]] = {}
        outcome = None
        if planner is not None:
            outcome = planner.finish(set(batch.ids))
            for pid, region in outcome.exact:
                batch.add(pid, region)
            for bid, data in outcome.blocks:
                batch.add(bid, data)
            batch.wait_copies()
            _check_unchanged(files, src.root)
            chains = outcome.chains
            files = [_with_chains(f, chains) for f in files] if chains else files

        # (3) kind and base; re-ingesting a stored model keeps the base it was stored with
        if (
            base is None
            and existing is not None
            and existing.base is not None
            and existing.content_digest == content_digest(tuple(f.recipe for f in files))
            and index.model(existing.base) is not None
        ):
            base = existing.base
        base_name, warnings = _resolve_base(index, name, base, layout)
        base_ref = None
        shares = False
        if base_name is not None:
            if base_name == name:
                raise IngestError(f"model {name!r} cannot be its own base")
            brow = index.model(base_name)
            assert brow is not None
            base_ref = BaseRef(brow.name, brow.recipe_id, brow.content_digest)
            base_pbs = index.model_blocks(base_name)
            base_text = index.recipe_json(base_name)
            if base_text is not None and '"delta"' in base_text:  # PBs the base stores as deltas count too
                base_pbs |= {t.pb for f in Recipe.from_json(base_text).files for t in f.tensors}
            shares = any(t.pb in base_pbs for f in files for t in f.recipe.tensors)
        kind = classify(layout, base_name is not None, shares)
        recipe = Recipe.build(name, kind, base_ref, dict(src.origin), tuple(f.recipe for f in files))
        recipe_json = recipe.canonical_json()
        if existing is not None and existing.recipe_id != recipe.id:
            raise ModelExistsError(
                f"model {name!r} is already stored with different content (recipe {existing.recipe_id[:12]}); "
                f"remove it first (pbkit rm {name}) or choose another --name"
            )
        batch.add(recipe.id, recipe_json)

        # (4) make the staged objects durable and visible; (5) one transaction publishes the model
        total = sum(n for _, _, n in batch.staged)
        done = 0

        def on_written(_id: str, n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress("write", done, total)

        new_objects, new_bytes = batch.commit(on_written)
        if progress is not None:
            progress("publish", 0, 1)
        blocks = list(recipe.blocks().values()) + [BlockInfo(recipe.id, len(recipe_json), "recipe")]
        shas = {f.realpath: (f.stat_key, f.recipe.sha256) for f in files if f.realpath in fresh}
        if existing is not None and existing.recipe_id == recipe.id:
            # already published: no index write at all unless the SHA-256 cache learned something
            if shas:
                index.cache_shas(shas)
            published = False
        else:
            published = index.publish(recipe, recipe_json, blocks, shas)
        if progress is not None:
            progress("publish", 1, 1)

    return IngestResult(
        name=name,
        recipe_id=recipe.id,
        kind=kind,
        base=base_name,
        files=len(files),
        blocks=len(blocks) - 1,
        logical_bytes=recipe.logical_bytes,
        new_objects=new_objects,
        new_bytes=new_bytes,
        unchanged=not published,
        seconds=time.perf_counter() - t0,
        warnings=warnings,
        delta_tensors=sum(1 for f in recipe.files for t in f.tensors if t.delta),
        delta_tensor_bytes=sum(t.nbytes for f in recipe.files for t in f.tensors if t.delta),
        delta_new_bytes=outcome.delta_bytes if outcome is not None else 0,
    )
