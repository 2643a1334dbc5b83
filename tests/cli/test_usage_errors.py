"""Every usage error of every command: one line on stderr, exit code 2, no traceback.

The cases are generated from the app's command tree (not hand-listed), so a command added by any
area is covered as soon as it is registered: an unknown option, each missing required parameter,
and a bad value for each parameter whose type can be wrong (numbers, ranges, choices, sizes,
paths that must exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, get_args, get_origin

import pytest
import typer.main

from pbkit.cli import build_app, main


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(command path, click command) of every group and leaf command of the app."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, path + (name,))


def _tree() -> list[tuple[tuple[str, ...], Any]]:
    return list(_walk(typer.main.get_command(build_app())))


TREE = _tree()
LEAVES = [(path, cmd) for path, cmd in TREE if not hasattr(cmd, "commands")]


def _scalar(annotation: Any) -> Any:
    if get_origin(annotation) in (list, tuple):
        return get_args(annotation)[0]
    return annotation


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False))


def _is_size(param: Any) -> bool:
    return param.metavar == "SIZE"  # pbkit.common.sizes.size_option


def _good_value(param: Any, tmp: Path) -> str:
    """A value that parses for this parameter (the command never runs: another one is wrong)."""
    desc = param.type_descriptor
    if desc.is_choice:
        return str(desc.choices[0].value if hasattr(desc.choices[0], "value") else desc.choices[0])
    if _is_size(param):
        return "1MiB"
    kind = _scalar(desc.annotation)
    if kind in (int, float):
        low = desc.parameter_info.min
        return str(low if low is not None else 1)
    if desc.is_path:
        return str(tmp)  # exists, so `exists=True` paths parse too
    return "x"


def _bad_values(param: Any) -> list[str]:
    """Values that must be refused while parsing (exit 2), by the parameter's type."""
    desc = param.type_descriptor
    info = desc.parameter_info
    kind = _scalar(desc.annotation)
    if desc.is_choice:
        return ["no-such-choice"]
    if _is_size(param):
        return ["12 parsecs", "-5MiB"]
    bad = []
    if kind in (int, float):
        bad.append("abc")
        if info.min is not None:
            bad.append(str(info.min - 1))
        if info.max is not None:
            bad.append(str(info.max + 1))
    if desc.is_path and info.exists:
        bad.append("/no/such/path/for/pbkit")
    return bad


def _argv(path: tuple[str, ...], params: list[Any], values: dict[str, str], tmp: Path) -> list[str]:
    argv = ["--store", str(tmp / "store"), *path]
    for p in params:
        if p.name not in values:
            continue
        if p.param_type_name == "argument":
            argv.append(values[p.name])
        else:
            argv += [p.opts[0], values[p.name]]
    return argv


def _required_values(params: list[Any], tmp: Path) -> dict[str, str]:
    return {p.name: _good_value(p, tmp) for p in params if p.required}


def _cases() -> Iterator[Any]:
    for path, cmd in TREE:
        label = " ".join(path) or "pbkit"
        yield pytest.param(path, "unknown-option", None, None, id=f"{label}:unknown-option")
        if hasattr(cmd, "commands"):
            continue
        params = [p for p in cmd.params if p.expose_value and not getattr(p, "is_eager", False)]
        for p in params:
            if p.required:
                yield pytest.param(path, "missing", p.name, None, id=f"{label}:missing-{p.name}")
            if not _is_flag(p):
                for bad in _bad_values(p):
                    yield pytest.param(path, "bad", p.name, bad, id=f"{label}:{p.name}={bad}")


def _leaf(path: tuple[str, ...]) -> Any:
    return dict(TREE)[path]


@pytest.mark.parametrize("path,case,param_name,bad", list(_cases()))
def test_usage_error_is_one_line_exit_2(path, case, param_name, bad, tmp_path, capsys):
    cmd = _leaf(path)
    if case == "unknown-option":
        argv = ["--store", str(tmp_path / "store"), *path, "--no-such-option-xyz"]
        if not hasattr(cmd, "commands"):  # give the required ones so only the unknown option is wrong
            params = [p for p in cmd.params if p.expose_value]
            argv = _argv(path, params, _required_values(params, tmp_path), tmp_path) + ["--no-such-option-xyz"]
    else:
        params = [p for p in cmd.params if p.expose_value and not getattr(p, "is_eager", False)]
        values = _required_values(params, tmp_path)
        if case == "missing":
            del values[param_name]
        else:
            values[param_name] = bad
        argv = _argv(path, params, values, tmp_path)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and lines[0].startswith("pbkit: error: "), (argv, err)
    assert "Traceback" not in err and out == ""
    if case == "missing" or case == "bad":
        option = next(p for p in cmd.params if p.name == param_name)
        assert (option.opts[0] if option.param_type_name == "option" else option.name.upper()) in lines[
            0
        ] or f"'{option.name}'" in lines[0], lines[0]
    assert not (tmp_path / "store").exists(), "a refused command must not create a store"


def test_tree_is_complete():
    """The walk sees every registered area (a failed registration would silently shrink it)."""
    names = {" ".join(p) for p, _ in LEAVES}
    assert {
        "ingest",
        "assemble",
        "verify",
        "ls",
        "need",
        "zoo build",
        "library export",
        "plan",
        "sim run",
        "sim compare",
        "learn train",
        "learn eval",
        "learn report",
    } <= names


def test_version(capsys):
    from pbkit import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pbkit {__version__}"


@pytest.mark.parametrize("group", [[], ["sim"], ["zoo"], ["library"], ["learn"]])
def test_group_without_command_prints_help(group, capsys):
    assert main(group) == 2
    out, err = capsys.readouterr()
    assert "Usage:" in out + err and "Traceback" not in out + err
