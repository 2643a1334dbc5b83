"""What a `--library` option accepts: a path, `synthetic`, or the name of a shipped library."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pbkit.library.format import LibraryError, PBLibrary, load_library
from pbkit.library.synthetic import synthetic_library


def shipped_library_names() -> list[str]:
    """Names of the libraries shipped as package data (pbkit/library/shipped/<name>.json)."""
    from pbkit.library.shipped import LIBRARIES_DIR

    return sorted(p.stem for p in LIBRARIES_DIR.glob("*.json"))


def resolve_library(spec: str | os.PathLike[str]) -> PBLibrary:
    """What a `--library` option accepts: a library JSON path, `synthetic` (the default synthetic
    library, generator seed 0) or the name of a shipped library (`shipped_library_names()`).

    A path that exists wins over a shipped name. Raises LibraryError when `spec` is none of
    these or the file is malformed.
    """
    text = str(spec)
    if text == "synthetic":
        return synthetic_library(np.random.default_rng(0))
    if Path(text).exists():
        return load_library(text)
    if text in shipped_library_names():
        from pbkit.library.shipped import LIBRARIES_DIR

        return load_library(LIBRARIES_DIR / f"{text}.json")
    raise LibraryError(
        f"{text}: no such file, and not 'synthetic' or a shipped library ({', '.join(shipped_library_names())})"
    )
