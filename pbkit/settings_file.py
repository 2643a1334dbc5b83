"""Reading a settings file (zoo specs, plan specs, scenario and training configs).

One reader so that every such file gets the same formats and the same one-line errors:
YAML (.yaml, .yml, and any other name), TOML (.toml) and JSON (.json); the top level must be a
mapping (an empty file is an empty mapping).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from pbkit.errors import PbkitError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]


def parse_settings(text: str, where: str, suffix: str, error: type[PbkitError]) -> dict[str, Any]:
    """Parse `text` by file type; `where` names the file in errors raised as `error`."""
    kind = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
    if kind == "TOML" and tomllib is None:
        raise error(f"{where}: TOML files need Python >= 3.11; use YAML")
    try:
        if kind == "TOML":
            data = tomllib.loads(text)
        elif kind == "JSON":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{where}: not valid {kind} ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{where}: top level is not a mapping")
    return data


def read_settings(path: str | os.PathLike[str], error: type[PbkitError]) -> dict[str, Any]:
    """Read and parse a settings file; every problem is one `error` naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_settings(text, str(path), path.suffix, error)
