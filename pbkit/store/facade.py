"""`Store`: the public facade over the object directory, the index, ingest and assembly.

Layout of a store directory (docs/on-disk-format.md):

    pbkit-store.json        {"format": "pbkit-store", "version": 1}
    index.sqlite            SQLite in WAL mode (+ -wal, -shm)
    objects/<2 hex>/<id>    content-addressed blocks and recipes, raw bytes
    tmp/                    temporary files of in-flight writes
    lock                    reader-writer lock (filelock, SQLite): ingests hold it shared while writing, gc exclusive
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from pbkit.common.fs import atomic_write_text
from pbkit.errors import PbkitError
from pbkit.store.index import Index, StoreIndexError, UnknownModelError
from pbkit.store.objects import ObjectDir
from pbkit.store.recipe import BlockInfo, Recipe, RecipeError

if TYPE_CHECKING:  # imported by the methods that use them: `pbkit ls` starts without them
    from pbkit.store import assemble as _assemble
    from pbkit.store import ingest as _ingest
    from pbkit.store.references import DeltaPolicy


STORE_FORMAT = "pbkit-store"
STORE_VERSION = 1
ProgressFn = Callable[[str, int, int], None]


class StoreError(PbkitError):
    """The store directory is unusable (not a store, newer format)."""


class StoreNotFoundError(StoreError):
    """A command that only reads was pointed at a directory that holds no store."""


class StoreIOError(PbkitError):
    """An operating-system error (disk full, permission denied) during ingest or assembly."""

    exit_code = 1  # a runtime failure, not bad input (pbkit.errors.PbkitError)


class ModelInUseError(PbkitError):
    """`rm` of a model that other stored models name as their base."""


class StoreCorruptError(PbkitError):
    """`verify` found corrupt or missing objects."""

    exit_code = 1  # a runtime finding, not bad input (pbkit.errors.PbkitError)


@dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    models_hit: list[str] = field(default_factory=list)
    missing_bases: list[str] = field(default_factory=list)  # "model -> base" whose base is gone or different
    unreferenced_objects: int = 0  # on disk, in no model (e.g. from a killed ingest); gc removes them
    temp_files: int = 0  # stray temporary files; ignored, gc removes them
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


@dataclass
class GcReport:
    removed_objects: int = 0
    removed_bytes: int = 0
    removed_temp_files: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _store_entry(name: str) -> bool:
    """Whether a file name may appear in a store that another process is still creating."""
    return name in (
        "index.sqlite",
        "index.sqlite-wal",
        "index.sqlite-shm",
        "objects",
        "tmp",
        "lock",
        "lock-journal",
    ) or (name.startswith(".pbkit-store.json."))


class Store:
    def __init__(self, root: Path, index: Index, objects: ObjectDir) -> None:
        self.root = root
        self.index = index
        self.objects = objects

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], create: bool = True) -> "Store":
        """Open the store at `path`. With `create` (what writing commands use), a directory that is
        absent or empty becomes a new store; without it (read commands), nothing is created.

        Raises StoreNotFoundError (no store there and `create` is false), StoreError (not a
        directory, not empty and not a store, unreadable marker, newer format).
        """
        root = Path(os.path.abspath(os.path.expanduser(path)))
        marker = root / "pbkit-store.json"
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root}: exists and is not a directory")
        if not create and not marker.is_file():
            # A mistyped --store must not become an empty store that `verify` calls clean.
            raise StoreNotFoundError(
                f"{root}: not a pbkit store (no pbkit-store.json); check --store or $PBKIT_STORE "
                "(only ingest and zoo build create a store)"
            )
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
                version = meta["version"]
                fmt = meta["format"]
            except (ValueError, KeyError, TypeError, OSError):
                raise StoreError(f"{marker}: unreadable store marker") from None
            if fmt != STORE_FORMAT:
                raise StoreError(f"{marker}: format {fmt!r} is not {STORE_FORMAT!r}")
            if not isinstance(version, int) or version > STORE_VERSION:
                raise StoreError(f"{root}: store version {version!r} is newer than this pbkit reads ({STORE_VERSION})")
        else:
            if root.is_dir() and any(not _store_entry(p.name) for p in root.iterdir()):
                raise StoreError(f"{root}: not a pbkit store and not empty; refusing to create a store there")
            root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(marker, json.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}) + "\n")
        objects = ObjectDir(root / "objects", root / "tmp")
        objects.ensure()
        (root / "lock").touch(exist_ok=True)
        return cls(root, Index(root / "index.sqlite"), objects)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        """Ingests hold the lock shared from before they decide which objects already exist until
        their model is published; gc holds it exclusive, so it never deletes an unreferenced object
        that a running ingest skipped writing because it was there (docs/store.md, "Concurrency").

        filelock's ReadWriteLock (SQLite's file locking: POSIX, Windows, no fcntl needed; released
        by the OS when a process dies). One instance per hold: threads of one process wait for
        each other like separate processes."""
        import filelock  # imported here: commands that never lock start faster

        rw = filelock.ReadWriteLock(self.root / "lock", is_singleton=False)
        try:
            with rw.write_lock() if exclusive else rw.read_lock():
                yield
        finally:
            rw.close()

    def shared_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by writers that add objects before publishing them (ingest, pull): gc waits."""
        return self._lock(exclusive=False)

    def register(self, recipe: Recipe, recipe_json: bytes) -> bool:
        """Publish a model whose blocks are all in the object directory already (a pull put them
        there, each verified against its id); writes the recipe object and the index rows in one
        transaction. Returns False if the same recipe is already registered under its name. The
        caller holds `shared_lock()` from before its blocks were written, so gc cannot take them.

        Raises StoreIndexError when a block is absent or a base it names is not in the store,
        ModelExistsError when the name holds another recipe."""
        missing = [b for b in recipe.blocks() if not self.objects.exists(b)]
        if missing:
            raise StoreIndexError(f"{self.root}: cannot register {recipe.name!r}: {len(missing)} blocks are not stored")
        if recipe.base is not None and self.index.model(recipe.base.name) is None:
            raise StoreIndexError(
                f"{self.root}: cannot register {recipe.name!r}: its base {recipe.base.name!r} is absent"
            )
        row = self.index.model(recipe.name)
        if row is not None and row.recipe_id == recipe.id:
            return False
        self.objects.write_many([(recipe.id, recipe_json)])
        blocks = list(recipe.blocks().values()) + [BlockInfo(recipe.id, len(recipe_json), "recipe")]
        return self.index.publish(recipe, recipe_json, blocks, {})

    # ------------------------------------------------------------------ ingest / assemble
    def ingest(
        self,
        source: str | os.PathLike[str],
        name: str | None = None,
        base: str | None = None,
        revision: str | None = None,
        progress: ProgressFn | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        delta: DeltaPolicy | None = None,
    ) -> _ingest.IngestResult:
        """Ingest a local model directory or hub id (HF cache `cache_dir`); see pbkit.store.ingest.
        With `delta`, tensors may be stored as delta blocks against the base chain."""
        from pbkit.store import ingest as _ingest

        try:
            result = _ingest.ingest(
                self.index,
                self.objects,
                source,
                name=name,
                base=base,
                revision=revision,
                progress=progress,
                write_lock=lambda: self._lock(exclusive=False),
                cache_dir=cache_dir,
                delta=delta,
            )
        except OSError as exc:  # disk full, permissions, a file vanishing under us
            raise StoreIOError(f"{exc.filename or self.root}: ingest failed ({exc.strerror or exc})") from None
        for w in result.warnings:
            warnings.warn(w, UserWarning, stacklevel=2)
        return result

    def recipe(self, name: str) -> Recipe:
        text = self.index.recipe_json(name)
        if text is None:
            raise UnknownModelError(f"no model named {name!r} in the store")
        recipe = Recipe.from_json(text, where=f"{self.root}: recipe of {name!r}")
        # The recipe id is the digest of its body: a recipe altered in the index is caught here,
        # before assembly trusts its block list (assembly checks blocks, not file SHA-256s, by default).
        row = self.index.model(name)
        if row is not None and row.recipe_id != recipe.id:
            raise RecipeError(
                f"{self.root}: recipe of {name!r} does not match its id {row.recipe_id[:16]} (index corrupt)"
            )
        return recipe

    def list_models(self) -> list[str]:
        return [m.name for m in self.index.models()]

    def assemble(
        self,
        name: str,
        out_dir: str | os.PathLike[str],
        from_blocks: str | os.PathLike[str] | None = None,
        progress: ProgressFn | None = None,
        deep: bool = False,
    ) -> _assemble.AssembleReport:
        """Rebuild model `name` into `out_dir`, from the store or from a directory of received blocks.

        Every block is verified against its id; `deep=True` also re-computes every file's SHA-256."""
        from pbkit.store import assemble as _assemble

        recipe = self.recipe(name)
        source: _assemble.BlockSource = (
            _assemble.DirBlocks(Path(from_blocks)) if from_blocks is not None else _assemble.StoreBlocks(self.objects)
        )
        try:
            return _assemble.assemble(recipe, out_dir, source, progress=progress, deep=deep)
        except OSError as exc:
            raise StoreIOError(f"{exc.filename or out_dir}: assembly failed ({exc.strerror or exc})") from None

    def base_chain(self, name: str) -> list[str]:
        """The models a device needs to run `name`: `name`, and while the last one is an adapter
        (which runs on top of its base), its base. A full or partial fine-tune holds all of its
        weights and ends the chain.

        Raises UnknownModelError if `name` or a base on the chain is not in the store (naming the
        model that needs it), StoreIndexError if the chain loops."""
        chain: list[str] = []
        current: str | None = name
        while current is not None:
            row = self.index.model(current)
            if row is None:
                if not chain:
                    raise UnknownModelError(f"no model named {name!r} in the store")
                raise UnknownModelError(f"model {chain[-1]!r}: its base {current!r} is not in the store")
            if current in chain:
                raise StoreIndexError(f"{self.root}: the base chain of {name!r} loops at {current!r}")
            chain.append(current)
            current = row.base if row.kind == "adapter" else None
        return chain

    def need(self, name: str, have: Iterable[str]) -> _assemble.NeedReport:
        """Blocks and bytes of model `name` and of its base chain (`base_chain`: what a device must
        hold to run it; an adapter's base, ...) not among the block ids `have`. The report's
        `extra["chain"]` lists the models counted.

        Raises UnknownModelError (no such model, or a base on its chain missing)."""
        from pbkit.store import assemble as _assemble

        chain = self.base_chain(name)
        have = set(have)
        # Each model of the chain through assembly's own `need` (which follows delta chains only
        # as far as a held reference), then the union: a block two of them need counts once.
        needed: dict[str, BlockInfo] = {}
        blocks: dict[str, BlockInfo] = {}
        for model in chain:
            recipe = self.recipe(model)
            for b in _assemble.need(recipe, have).needed:
                needed.setdefault(b.id, b)
            for bid, info in recipe.blocks().items():
                blocks.setdefault(bid, info)
        total = sum(b.nbytes for b in blocks.values())
        needed_bytes = sum(b.nbytes for b in needed.values())
        return _assemble.NeedReport(
            model=name,
            needed=list(needed.values()),
            needed_bytes=needed_bytes,
            have_bytes=total - needed_bytes,
            total_blocks=len(blocks),
            total_bytes=total,
            extra={"chain": chain},
        )

    def dependants(self, name: str) -> list[str]:
        """Every stored model built on `name`, directly or through others (children first, then theirs)."""
        children: dict[str, list[str]] = {}
        for row in self.index.models():
            if row.base is not None:
                children.setdefault(row.base, []).append(row.name)
        out: list[str] = []
        todo = list(children.get(name, []))
        while todo:
            child = todo.pop(0)
            if child not in out and child != name:
                out.append(child)
                todo.extend(children.get(child, []))
        return out

    def model_blocks(self, name: str) -> set[str]:
        """Ids of every block a model references (its recipe object included)."""
        if self.index.model(name) is None:
            raise UnknownModelError(f"no model named {name!r} in the store")
        return self.index.model_blocks(name)

    def held_blocks(self, block_dir: str | os.PathLike[str]) -> set[str]:
        """Ids of the blocks in a received-blocks directory that verify against the store's index."""
        from pbkit.store import assemble as _assemble

        blocks = _assemble.DirBlocks(Path(block_dir))
        held = set()
        for bid in blocks.ids():
            info = self.index.block(bid)
            if info is not None and info.kind != "recipe" and _assemble.check_block(blocks, info):
                held.add(bid)
        return held

    def remove(self, name: str, cascade: bool = False) -> int:
        """Forget a model; returns how many blocks no model uses any more (deleted by gc).

        A model that others are built on (adapters, fine-tunes naming it as their base) is refused
        with ModelInUseError naming them; with `cascade`, they are removed too (`dependants(name)`
        beforehand says which). Raises UnknownModelError if there is no such model."""
        if self.index.model(name) is None:
            raise UnknownModelError(f"no model named {name!r} in the store")
        dependants = self.dependants(name)
        if dependants and not cascade:
            raise ModelInUseError(
                f"model {name!r} is the base of {', '.join(dependants)}; remove them first, "
                f"or remove all with: pbkit rm {name} --cascade"
            )
        freed = 0
        for model in reversed(dependants):  # the deepest first: no model is ever left without its base
            freed += self.index.remove(model)
        return freed + self.index.remove(name)

    # ------------------------------------------------------------------ maintenance
    def verify(self, progress: ProgressFn | None = None) -> VerifyReport:
        """Re-hash every indexed object; name each corrupt or missing one and the models hit."""
        from pbkit.store import assemble as _assemble

        t0 = time.perf_counter()
        report = VerifyReport()
        blocks = list(self.index.blocks())
        total = sum(b.nbytes for b in blocks)
        done = 0
        bad: list[tuple[str, str]] = []
        source = _assemble.StoreBlocks(self.objects)
        for info in blocks:
            ok = _assemble.check_block(source, info)
            if ok is None:
                report.missing.append(info.id)
                bad.append((info.id, "missing"))
            elif not ok:
                report.corrupt.append(info.id)
                bad.append((info.id, "corrupt"))
            report.checked += 1
            done += info.nbytes
            if progress is not None:
                progress("verify", done, total)
        report.bytes = done
        hit: set[str] = set()
        for bid, reason in bad:
            models = self.index.models_using(bid)
            hit.update(models)
            info = self.index.block(bid)
            what = info.kind if info else "block"
            report.problems.append(
                f"{self.objects.path(bid)}: {what} object {reason} (used by {', '.join(models) or 'no model'})"
            )
        for row in self.index.models():
            try:
                recipe = self.recipe(row.name)
            except RecipeError as exc:
                report.problems.append(str(exc))
                hit.add(row.name)
                continue
            if recipe.id != row.recipe_id:
                report.problems.append(
                    f"{self.root}: index recipe of {row.name!r} does not hash to its id {row.recipe_id[:16]}"
                )
                hit.add(row.name)
            if recipe.base is not None:
                brow = self.index.model(recipe.base.name)
                if brow is None or brow.content_digest != recipe.base.content_digest:
                    state = "is missing" if brow is None else "has different content than the one it was built on"
                    report.missing_bases.append(f"{row.name} -> {recipe.base.name}")
                    report.problems.append(f"{self.root}: model {row.name!r}: its base {recipe.base.name!r} {state}")
                    hit.add(row.name)
        report.models_hit = sorted(hit)
        referenced = self.index.referenced_ids()
        report.unreferenced_objects = sum(1 for i in self.objects.iter_ids() if i not in referenced)
        report.temp_files = sum(1 for _ in self.objects.iter_temp())
        report.seconds = time.perf_counter() - t0
        return report

    def gc(self) -> GcReport:
        """Delete objects no model references and stale temporary files (waits for running ingests)."""
        report = GcReport()
        with self._lock(exclusive=True):
            with self.index.transaction() as db:
                db.execute("DELETE FROM pbs WHERE id NOT IN (SELECT pb FROM refs)")
            referenced = self.index.referenced_ids()
            for obj_id in list(self.objects.iter_ids()):
                if obj_id not in referenced:
                    report.removed_bytes += self.objects.remove(obj_id)
                    report.removed_objects += 1
            for tmp in list(self.objects.iter_temp()):
                try:
                    if tmp.is_dir():
                        shutil.rmtree(tmp)
                    else:
                        tmp.unlink()
                    report.removed_temp_files += 1
                except FileNotFoundError:
                    pass
            self.index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return report

    def stats(self) -> dict[str, Any]:
        """Totals: logical_bytes (sum of model files), unique_bytes (distinct blocks), models, blocks, ..."""
        db = self.index.db
        models = db.execute("SELECT COUNT(*), COALESCE(SUM(logical_bytes), 0) FROM models").fetchone()
        blocks = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM pbs WHERE kind != 'recipe'").fetchone()
        tensors = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM pbs WHERE kind = 'tensor'").fetchone()
        deltas = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM pbs WHERE kind = 'delta'").fetchone()
        shared = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM pbs WHERE kind != 'recipe' AND id IN "
            "(SELECT pb FROM refs GROUP BY pb HAVING COUNT(*) > 1)"
        ).fetchone()
        logical, unique = int(models[1]), int(blocks[1])
        return {
            "store": str(self.root),
            "models": int(models[0]),
            "blocks": int(blocks[0]),
            "logical_bytes": logical,
            "unique_bytes": unique,
            "dedup_ratio": logical / unique if unique else 1.0,
            "saved_bytes": logical - unique,
            "tensor_blocks": int(tensors[0]),
            "tensor_bytes": int(tensors[1]),
            "delta_blocks": int(deltas[0]),  # lossless delta blocks (docs/delta-blocks.md)
            "delta_bytes": int(deltas[1]),
            "shared_blocks": int(shared[0]),
            "shared_block_bytes": int(shared[1]),
        }

    def dedup_table(self) -> list[dict[str, Any]]:
        """Per model: logical bytes, block bytes, bytes in blocks no other model uses ("own"), and
        bytes of its delta blocks ("delta")."""
        db = self.index.db
        rows = db.execute(
            "SELECT m.name, m.kind, m.base, m.logical_bytes, COUNT(p.id), COALESCE(SUM(p.bytes), 0), "
            "COALESCE(SUM(CASE WHEN (SELECT COUNT(*) FROM refs o WHERE o.pb = r.pb) = 1 THEN p.bytes ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN p.kind = 'delta' THEN p.bytes ELSE 0 END), 0) "
            "FROM models m JOIN refs r ON r.model = m.name JOIN pbs p ON p.id = r.pb AND p.kind != 'recipe' "
            "GROUP BY m.name ORDER BY m.created, m.name"
        ).fetchall()
        return [
            {
                "name": r[0],
                "kind": r[1],
                "base": r[2],
                "logical_bytes": r[3],
                "blocks": r[4],
                "block_bytes": r[5],
                "own_bytes": r[6],
                "shared_bytes": r[5] - r[6],
                "delta_bytes": r[7],
            }
            for r in rows
        ]

    def model_info(self, name: str) -> dict[str, Any]:
        """What `pbkit show` prints: the index row, the recipe summary and sharing with other models."""
        row = self.index.model(name)
        if row is None:
            raise UnknownModelError(f"no model named {name!r} in the store")
        recipe = self.recipe(name)
        blocks = recipe.blocks()
        db = self.index.db
        shared = {
            r[0]: r[1]
            for r in db.execute(
                "SELECT other.model, SUM(p.bytes) FROM refs mine JOIN refs other ON other.pb = mine.pb "
                "JOIN pbs p ON p.id = mine.pb WHERE mine.model = ? AND other.model != ? AND p.kind != 'recipe' "
                "GROUP BY other.model ORDER BY other.model",
                (name, name),
            )
        }
        return {
            "name": row.name,
            "recipe_id": row.recipe_id,
            "kind": row.kind,
            "base": None
            if recipe.base is None
            else {
                "name": recipe.base.name,
                "recipe_id": recipe.base.recipe_id,
                "content_digest": recipe.base.content_digest,
            },
            "source": row.source,
            "content_digest": row.content_digest,
            "created": row.created,
            "logical_bytes": row.logical_bytes,
            "blocks": len(blocks),
            "block_bytes": sum(b.nbytes for b in blocks.values()),
            "shared_bytes_with": shared,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "kind": f.kind, "tensors": len(f.tensors)}
                for f in recipe.files
            ],
        }
