"""The PB library: the format `delivery` and `learning` read, and what produces it.

`format` (the JSON schema, `PBLibrary`), `synthetic` (a generated library), `resolve` (a path,
`synthetic` or a shipped name), `summary` (`describe`), `grouping` (tensor/layer/fixed granularity), `plan`
(exact plans of large architectures, data in `plans/`), `export` (a store's models as a library)
and `shipped/` (the libraries shipped with pbkit, `make libraries`).

The names below are re-exported lazily (PEP 562): `from pbkit.library import PBLibrary` works,
while a command that only needs `pbkit.library.grouping` does not pay for numpy at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "GRANULARITIES": "format",
    "LIBRARY_FORMAT": "format",
    "LIBRARY_VERSION": "format",
    "LibraryError": "format",
    "ModelEntry": "format",
    "PBEntry": "format",
    "PBLibrary": "format",
    "load_library": "format",
    "synthetic_library": "synthetic",
    "resolve_library": "resolve",
    "shipped_library_names": "resolve",
    "describe": "summary",
    "describe_text": "summary",
}
__all__ = [
    "GRANULARITIES",
    "LIBRARY_FORMAT",
    "LIBRARY_VERSION",
    "LibraryError",
    "ModelEntry",
    "PBEntry",
    "PBLibrary",
    "describe",
    "describe_text",
    "load_library",
    "resolve_library",
    "shipped_library_names",
    "synthetic_library",
]

if TYPE_CHECKING:
    from pbkit.library.format import (
        GRANULARITIES,
        LIBRARY_FORMAT,
        LIBRARY_VERSION,
        LibraryError,
        ModelEntry,
        PBEntry,
        PBLibrary,
        load_library,
    )
    from pbkit.library.resolve import resolve_library, shipped_library_names
    from pbkit.library.summary import describe, describe_text
    from pbkit.library.synthetic import synthetic_library


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pbkit.library' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pbkit.library.{module}"), name)
