"""The PB store: content-addressed objects, the SQLite index, recipes, ingest and assembly.

`Store` (in `facade`) is the public entry point; the other modules are its parts:
`objects` (the object directory), `index` (models, files, blocks, references), `recipe` (how to
rebuild a file byte for byte), `ingest` (cut a model into PBs) and `assemble` (rebuild it).
"""

from pbkit.store.facade import (
    STORE_FORMAT,
    STORE_VERSION,
    GcReport,
    ModelInUseError,
    Store,
    StoreCorruptError,
    StoreError,
    StoreIOError,
    StoreNotFoundError,
    VerifyReport,
)

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "GcReport",
    "ModelInUseError",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreIOError",
    "StoreNotFoundError",
    "VerifyReport",
]
