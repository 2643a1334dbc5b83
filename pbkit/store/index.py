"""The store's SQLite index (`index.sqlite`, WAL mode): models, their files, blocks and references.

Objects are written before the index mentions them, and a model is published in one short
transaction (`BEGIN IMMEDIATE`), so a reader never sees a model whose blocks are not on disk
and two processes can ingest at once (the second waits on `busy_timeout`). Schema version is
`INDEX_VERSION`; see docs/on-disk-format.md.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from pbkit.errors import PbkitError
from pbkit.store.recipe import BlockInfo, Recipe

INDEX_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    recipe_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    base TEXT,
    source TEXT NOT NULL,
    content_digest TEXT NOT NULL,
    logical_bytes INTEGER NOT NULL,
    created REAL NOT NULL,
    recipe TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (model, path)
);
CREATE TABLE IF NOT EXISTS pbs (
    id TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    kind TEXT NOT NULL,
    dtype TEXT,
    shape TEXT
);
CREATE TABLE IF NOT EXISTS refs (
    model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    pb TEXT NOT NULL,
    PRIMARY KEY (model, pb)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_pb ON refs(pb);
CREATE TABLE IF NOT EXISTS sha_cache (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""


class StoreIndexError(PbkitError):
    """The index is unreadable, of a newer version, or a model name is in conflict."""


class ModelExistsError(PbkitError):
    """A model of that name is already stored with different content."""


class UnknownModelError(PbkitError, KeyError):
    """No model of that name in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelRow:
    name: str
    recipe_id: str
    kind: str
    base: str | None
    source: dict[str, Any]
    content_digest: str
    logical_bytes: int
    created: float


@dataclass(frozen=True)
class StatKey:
    """What identifies an unchanged file for the SHA-256 cache (ctime moves on any write)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db.execute("PRAGMA synchronous = FULL")  # a published model survives power loss
            self.db.execute("PRAGMA foreign_keys = ON")
            version = self._version()
            if version is None:  # a new store: create the schema (WAL mode persists in the file)
                self._create_schema()
                version = self._version()
            if version is None or version > INDEX_VERSION:
                raise StoreIndexError(
                    f"{path}: index version {version} is newer than this pbkit reads ({INDEX_VERSION})"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreIndexError(f"{path}: cannot open the store index ({exc})") from None

    def _create_schema(self) -> None:
        # Switching to WAL needs an exclusive lock and SQLite does not wait on busy_timeout for
        # it: two processes creating one store at once retry here instead of failing.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
                with self.transaction():
                    for stmt in _SCHEMA.strip().split(";"):
                        if stmt.strip():
                            self.db.execute(stmt)
                    if self._version() is None:  # not created meanwhile by another process
                        self.db.execute("INSERT INTO meta VALUES ('index_version', ?)", (str(INDEX_VERSION),))
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _version(self) -> int | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='index_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table yet
            return None
        return None if row is None else int(row[0])

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ transactions
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            if exc_type is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
                self.db.execute("ROLLBACK")

    def transaction(self) -> "Index._Tx":
        return Index._Tx(self.db)

    # ------------------------------------------------------------------ models
    def model(self, name: str) -> ModelRow | None:
        row = self.db.execute(
            "SELECT name, recipe_id, kind, base, source, content_digest, logical_bytes, created FROM models WHERE name=?",
            (name,),
        ).fetchone()
        return None if row is None else _model_row(row)

    def models(self) -> list[ModelRow]:
        rows = self.db.execute(
            "SELECT name, recipe_id, kind, base, source, content_digest, logical_bytes, created FROM models ORDER BY name"
        ).fetchall()
        return [_model_row(r) for r in rows]

    def recipe_json(self, name: str) -> str | None:
        row = self.db.execute("SELECT recipe FROM models WHERE name=?", (name,)).fetchone()
        return None if row is None else row[0]

    def publish(
        self, recipe: Recipe, recipe_json: bytes, blocks: Iterable[BlockInfo], shas: dict[str, tuple[StatKey, str]]
    ) -> bool:
        """Record a model, its files, blocks and references in one transaction.

        Returns False (and changes nothing) if the same recipe is already published under this
        name; raises ModelExistsError if the name holds a different recipe, StoreIndexError if
        SQLite cannot write (disk full, I/O error: the transaction is rolled back, nothing changes).
        """
        try:
            return self._publish(recipe, recipe_json, blocks, shas)
        except sqlite3.OperationalError as exc:
            raise StoreIndexError(f"{self.path}: cannot publish model {recipe.name!r} ({exc})") from None

    def _publish(
        self, recipe: Recipe, recipe_json: bytes, blocks: Iterable[BlockInfo], shas: dict[str, tuple[StatKey, str]]
    ) -> bool:
        with self.transaction() as db:
            row = db.execute("SELECT recipe_id FROM models WHERE name=?", (recipe.name,)).fetchone()
            if row is not None:
                if row[0] == recipe.id:
                    self._cache_shas(db, shas)
                    return False
                raise ModelExistsError(
                    f"model {recipe.name!r} is already stored with different content "
                    f"(recipe {row[0][:12]}); remove it first (pbkit rm {recipe.name}) or choose another --name"
                )
            db.execute(
                "INSERT INTO models VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    recipe.name,
                    recipe.id,
                    recipe.kind,
                    recipe.base.name if recipe.base else None,
                    json.dumps(recipe.source, sort_keys=True),
                    recipe.content_digest,
                    recipe.logical_bytes,
                    time.time(),
                    recipe_json.decode("utf-8"),
                ),
            )
            db.executemany(
                "INSERT INTO files VALUES (?,?,?,?,?)",
                [(recipe.name, f.path, f.size, f.sha256, f.kind) for f in recipe.files],
            )
            blocks = list(blocks)
            db.executemany(
                "INSERT OR IGNORE INTO pbs VALUES (?,?,?,?,?)",
                [
                    (b.id, b.nbytes, b.kind, b.dtype, None if b.shape is None else json.dumps(list(b.shape)))
                    for b in blocks
                ],
            )
            db.executemany("INSERT OR IGNORE INTO refs VALUES (?,?)", [(recipe.name, b.id) for b in blocks])
            self._cache_shas(db, shas)
        return True

    def cache_shas(self, shas: dict[str, tuple[StatKey, str]]) -> None:
        with self.transaction() as db:
            self._cache_shas(db, shas)

    @staticmethod
    def _cache_shas(db: sqlite3.Connection, shas: dict[str, tuple[StatKey, str]]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO sha_cache VALUES (?,?,?,?,?,?,?)",
            [(p, k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns, sha) for p, (k, sha) in shas.items()],
        )

    def remove(self, name: str) -> int:
        """Drop a model and its references; PB rows no model references any more go too.

        Returns how many blocks became unreferenced (their objects stay until `gc`).
        """
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM models WHERE name=?", (name,)).fetchone() is None:
                raise UnknownModelError(f"no model named {name!r} in the store")
            pbs = [r[0] for r in db.execute("SELECT pb FROM refs WHERE model=?", (name,))]
            db.execute("DELETE FROM refs WHERE model=?", (name,))
            db.execute("DELETE FROM files WHERE model=?", (name,))
            db.execute("DELETE FROM models WHERE name=?", (name,))
            orphans = [p for p in pbs if db.execute("SELECT 1 FROM refs WHERE pb=? LIMIT 1", (p,)).fetchone() is None]
            db.executemany("DELETE FROM pbs WHERE id=?", [(p,) for p in orphans])
        return len(orphans)

    # ------------------------------------------------------------------ blocks
    def model_blocks(self, name: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT pb FROM refs WHERE model=?", (name,))}

    def block(self, pb: str) -> BlockInfo | None:
        row = self.db.execute("SELECT id, bytes, kind, dtype, shape FROM pbs WHERE id=?", (pb,)).fetchone()
        return None if row is None else _block(row)

    def blocks(self) -> Iterator[BlockInfo]:
        for row in self.db.execute("SELECT id, bytes, kind, dtype, shape FROM pbs ORDER BY id"):
            yield _block(row)

    def referenced_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT pb FROM refs")}

    def models_using(self, pb: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT model FROM refs WHERE pb=? ORDER BY model", (pb,))]

    # ------------------------------------------------------------------ sha cache
    def cached_sha(self, path: str, key: StatKey) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM sha_cache WHERE path=? AND dev=? AND ino=? AND size=? AND mtime_ns=? AND ctime_ns=?",
            (path, key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns),
        ).fetchone()
        return None if row is None else row[0]


def _model_row(r: tuple) -> ModelRow:
    return ModelRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7])


def _block(r: tuple) -> BlockInfo:
    return BlockInfo(
        id=r[0], nbytes=r[1], kind=r[2], dtype=r[3], shape=None if r[4] is None else tuple(json.loads(r[4]))
    )
