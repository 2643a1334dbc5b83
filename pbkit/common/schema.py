"""Versions of the JSON result documents: every one carries `"schema": "pbkit.<kind>/<version>"`.

The naming rule (docs/result-formats.md): `kind` is the document, named by the command or script
that writes it (`sim-compare`, `sweep-summary`, `learn-eval`, `bench.modes-table`, ...), and
`version` an integer raised whenever a field a reader uses changes meaning or shape. Version 1 is
the unversioned layout written before intervals had one shape (`"ci95"` a half-width in some
files and `[lo, hi]` in others); no document is written as version 1 any more and readers refuse
it with a line saying so.
"""

from __future__ import annotations

from typing import Any, Mapping

from pbkit.errors import PbkitError

SCHEMA_KEY = "schema"
VERSION = 2  # every result document written today; 2 = intervals as delivery.interval.Interval


class SchemaError(PbkitError, ValueError):
    """A result document of another kind, or of a version this pbkit cannot read."""


def schema_id(kind: str, version: int = VERSION) -> str:
    """`pbkit.<kind>/<version>`, the value of a document's `"schema"` key."""
    return f"pbkit.{kind}/{version}"


def versioned(kind: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` with its schema key first (the key a reader looks at before anything else)."""
    return {SCHEMA_KEY: schema_id(kind), **{k: v for k, v in document.items() if k != SCHEMA_KEY}}


def check_schema(document: Any, kind: str, where: str) -> dict[str, Any]:
    """`document` if it is a `kind` document of the current version. Raises SchemaError naming
    `where` (a file name, say) for anything else: not an object, no schema key (a version-1 file),
    another kind, another version."""
    if not isinstance(document, dict):
        raise SchemaError(f"{where}: not a JSON object, not a pbkit.{kind} document")
    got = document.get(SCHEMA_KEY)
    want = schema_id(kind)
    if got == want:
        return document
    if got is None:
        raise SchemaError(
            f"{where}: no {SCHEMA_KEY!r} key: written before result schemas were versioned "
            f"(version 1, intervals as 'ci95'); this pbkit reads {want} (docs/result-formats.md)"
        )
    raise SchemaError(f"{where}: schema {got!r}, this pbkit reads {want} (docs/result-formats.md)")
