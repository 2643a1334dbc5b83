"""Settings: the one loader of every settings type (scenario, training config, zoo and plan specs).

One reader so that every such file gets the same formats and the same one-line errors:
YAML (.yaml, .yml, and any other name), TOML (.toml) and JSON (.json); the top level must be a
mapping (an empty file is an empty mapping). `find_settings_file` is the one "bundled name or
path" rule; `load_typed` turns a mapping into a settings dataclass with every field
type-checked; `parse_set_overrides` reads `--set key=value` items and `apply_overrides` routes
dotted keys (`scenario.beamformer=mrt`) into nested mappings; `load_settings` does all four, so
adding a knob to a settings type is adding one field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from pbkit.errors import PbkitError

T = TypeVar("T")


def _yaml():
    """PyYAML, imported when a YAML text is parsed (command registration imports this module, and
    `pbkit --help` should not pay for yaml)."""
    import yaml

    return yaml


def _yaml_loader(yaml):
    # libyaml's scanner when PyYAML has it: the pure-Python one is quadratic in the nesting depth
    # of flow collections (a fuzzed file of 3000 '[' took minutes); same safe constructor.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]


def parse_settings(text: str, where: str, suffix: str, error: type[PbkitError]) -> dict[str, Any]:
    """Parse `text` by file type; `where` names the file in errors raised as `error`."""
    kind = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
    yaml = _yaml()
    if kind == "TOML" and tomllib is None:
        raise error(f"{where}: TOML files need Python >= 3.11; use YAML")
    try:
        if kind == "TOML":
            data = tomllib.loads(text)
        elif kind == "JSON":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=_yaml_loader(yaml))
    except (yaml.YAMLError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{where}: not valid {kind} ({first})") from None
    except RecursionError:  # the parsers recurse per nesting level
        raise error(f"{where}: not valid {kind} (nested too deeply)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{where}: top level is not a mapping")
    return data


def read_settings(path: str | os.PathLike[str], error: type[PbkitError]) -> dict[str, Any]:
    """Read and parse a settings file; every problem is one `error` naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_settings(text, str(path), path.suffix, error)


class SettingsDeprecationWarning(FutureWarning):
    """A settings file uses an old name of a key, still accepted for one release; the message is
    one line naming the file and the new key (`pbkit` prints it as `pbkit: warning: ...`)."""


def renamed_keys(
    data: Mapping[str, Any], renames: Mapping[str, str], where: str, error: type[PbkitError]
) -> dict[str, Any]:
    """`data` with every old key of `renames` (old -> new) written under its new name, warning
    once per key with a SettingsDeprecationWarning naming `where` and the new key. Raises `error`
    when a mapping gives both the old and the new name."""
    import warnings

    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out:
            raise error(f"{where}: {old} and {new} are the same setting ({old} is its old name): give {new} only")
        out[new] = out.pop(old)
        warnings.warn(
            f"{where}: {old} is deprecated, write {new} (the old name is accepted until the next release)",
            SettingsDeprecationWarning,
            stacklevel=2,
        )
    return out


def _type_error(error: type[PbkitError], where: str, name: str, value: Any, expected: str) -> PbkitError:
    return error(f"{where}: {name} = {value!r} is not {expected}")


def _coerce(name: str, kind: str, value: Any, where: str, error: type[PbkitError]) -> Any:
    """`value` checked against the annotation string `kind` (dataclass fields under
    `from __future__ import annotations` carry their types as strings)."""
    kind = kind.replace(" ", "")
    if kind.endswith("|None") or kind.startswith("Optional["):
        if value is None:
            return None
        kind = kind[:-5] if kind.endswith("|None") else kind[len("Optional[") : -1]
    if kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(error, where, name, value, "true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(error, where, name, value, "an integer")
        return value
    if kind == "float":
        # PyYAML reads `1e-3` (no dot) as a string: accept any string Python reads as a number.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _type_error(error, where, name, value, "a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(error, where, name, value, "a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise _type_error(error, where, name, value, "a string")
        return value
    if kind.startswith("tuple[") or kind.startswith("list["):
        inner = kind[kind.index("[") + 1 : -1].split(",")[0]
        if name.endswith("seeds") and inner == "int" and isinstance(value, (str, int)) and not isinstance(value, bool):
            value = _seeds(name, value, where, error)  # `--set eval_seeds=2000-2009`: the --seeds grammar
        elif isinstance(value, str):
            value = _comma_list(value)  # `--set variants=maasn-da,maasn-noda`; '' is the empty list
        if not isinstance(value, (list, tuple)):
            raise _type_error(error, where, name, value, "a list like [1, 2]")
        items = [_coerce(name, inner, v, where, error) for v in value]
        return tuple(items) if kind.startswith("tuple[") else items
    if kind.startswith("dict"):
        if not isinstance(value, dict):
            raise _type_error(error, where, name, value, "a mapping")
        return dict(value)
    return value  # any other annotation (Any): passed through unchecked


def _seeds(name: str, value: str | int, where: str, error: type[PbkitError]) -> list[int]:
    """A `...seeds` field written in the one --seeds grammar (`10`, `0-9`, `0,3,5`)."""
    from pbkit.common.seeds import SeedError, parse_seeds

    if isinstance(value, str) and not value.strip():
        return []
    try:
        return parse_seeds(value, name)
    except SeedError as exc:
        raise error(f"{where}: {exc}") from None


def _comma_list(text: str) -> list[Any]:
    """`a,b,c` as a list of YAML scalars (`0.1,0.3` gives numbers); blank items dropped."""
    yaml = _yaml()
    items = []
    for item in text.split(","):
        if item.strip():
            try:
                items.append(yaml.safe_load(item))
            except yaml.YAMLError:
                items.append(item.strip())
    return items


def load_typed(cls: type[T], data: Any, where: str, error: type[PbkitError]) -> T:
    """An instance of the dataclass `cls` from a mapping of settings, every field type-checked.

    Unknown keys and ill-typed values raise `error` naming `where` and the key; numbers written
    as strings (`1e-3` in YAML) are accepted for float fields. The class's own validation
    (`__post_init__`) runs as usual. Raises `error`.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{where}: top level is not a mapping of settings")
    kinds = {
        f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        for f in dataclasses.fields(cls)
    }  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in kinds:
            close = difflib.get_close_matches(str(key), list(kinds), n=1)
            raise error(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        values[key] = _coerce(key, kinds[key], value, where, error)
    for f in dataclasses.fields(cls):  # a field without a default is a key the file must give
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and f.name not in values and no_default:
            raise error(f"{where}: missing key {f.name!r}")
    try:
        return cls(**values)
    except error as exc:
        message = str(exc)
        raise error(message if message.startswith(where) else f"{where}: {message}") from None


def parse_set_overrides(items: list[str] | tuple[str, ...], error: type[PbkitError]) -> dict[str, Any]:
    """`--set key=value` strings as {key: value}, values read as YAML scalars (`a.b=1` keeps the
    dotted key for the caller to route). Raises `error` for an item without `=` or a bad value."""
    out: dict[str, Any] = {}
    yaml = _yaml()
    for item in items:
        if "=" not in item:
            raise error(f"--set {item!r} is not key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise error(f"--set {item!r} has no key")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise error(f"--set {item!r}: cannot parse the value") from None
    return out


def find_settings_file(
    source: str | os.PathLike[str], bundled: Mapping[str, Path], kind: str, error: type[PbkitError]
) -> Path:
    """The file `source` names: an existing path wins, then a bundled name (`bundled[name]`).

    Raises `error`: "<source>: no such file" when `source` looks like a path (has a directory
    part or a suffix), else "<source>: no such file and not a bundled <kind> (have: ...)".
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        raise error(f"{source}: is a directory, not a {kind} file")
    text = str(source)
    looks_like_path = os.sep in text or "/" in text or bool(path.suffix)
    if not looks_like_path and text in bundled:
        return Path(bundled[text])
    if looks_like_path:
        raise error(f"{source}: no such {kind} file")
    raise error(f"{source}: no such file and not a bundled {kind} (have: {', '.join(sorted(bundled))})")


def apply_overrides(
    data: Mapping[str, Any], overrides: Mapping[str, Any], error: type[PbkitError], where: str = "--set"
) -> dict[str, Any]:
    """`data` with `overrides` applied; a dotted key (`scenario.beamformer`) sets a key of the
    nested mapping `data["scenario"]` (created if None). Raises `error` naming `where` and the key
    when a dotted prefix is not a mapping setting. Unknown plain keys are left to `load_typed`."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None and part in node:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise error(f"{where}: {'.'.join(parts[: depth + 1])!r} is not a group of settings (in {key!r})")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = value
    return out


def load_settings(
    cls: type[T],
    source: str | os.PathLike[str] | None,
    *,
    error: type[PbkitError],
    kind: str,
    bundled: Mapping[str, Path] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    where: str = "--set",
    base: T | None = None,
) -> T:
    """A settings dataclass `cls` from its defaults (`source` None), a file, or a bundled name,
    then `overrides` (`key=value` strings or a mapping, dotted keys into nested settings).
    `base`, when given instead of `source`, is the instance the overrides apply to (a caller that
    layers something between the file and the overrides).

    Errors name the file for what is in the file and `where` (the option) for the overrides.
    Raises `error`.
    """
    if base is not None:
        pass
    elif source is None:
        base = cls()
    else:
        path = find_settings_file(source, bundled or {}, kind, error)
        base = load_typed(cls, read_settings(path, error), str(path), error)
    values = parse_set_overrides(list(overrides), error) if not isinstance(overrides, Mapping) else dict(overrides)
    if not values:
        return base
    return load_typed(cls, apply_overrides(_as_dict(base), values, error, where), where, error)


def _as_dict(settings: Any) -> dict[str, Any]:
    to_dict = getattr(settings, "to_dict", None)
    return to_dict() if callable(to_dict) else dataclasses.asdict(settings)
