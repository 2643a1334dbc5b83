"""Packaging: SPDX license, one version, and every area's imports declared in its extra.

A module that imports a package its area's extra does not install breaks `pip install
'pbkit[sim]'` (say) for users while every test here still passes with everything installed; this
test reads the imports (module-level and lazy ones) with `ast` and checks them against pyproject.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN = {"pbkit", "delivery", "learning"}
# Which extra each part of the code belongs to ("" = the core dependencies).
ZOO_MODULES = (
    "pbkit/zoo/",
    "pbkit/library/plan.py",
    "pbkit/zoo/finetune.py",
    "pbkit/zoo/bundled.py",
    "pbkit/model/legacy_pickle.py",
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library (not a pbkit dependency)
    tomllib = None

pytestmark = pytest.mark.skipif(tomllib is None, reason="reading pyproject.toml needs Python >= 3.11 (tomllib)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(project: dict, extra: str) -> set[str]:
    """Distribution names an extra installs, with the core and pbkit[...] self-references expanded."""
    reqs = list(project["project"]["dependencies"])
    seen: set[str] = set()
    todo = [extra] if extra else []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in project["project"]["optional-dependencies"][name]:
            own = re.match(r"pbkit\[([^\]]+)\]", req)
            if own:
                todo += [x.strip() for x in own.group(1).split(",")]
            else:
                reqs.append(req)
    return {_norm(re.match(r"[A-Za-z0-9_.-]+", r).group(0)) for r in reqs}


def _area(path: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    if rel.startswith("delivery/"):
        return "sim"
    if rel.startswith("learning/"):
        return "learn"
    if rel.startswith("pbkit/net/"):
        return "net"
    return "zoo" if rel.startswith(ZOO_MODULES) else ""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in OWN and n != "__future__"}


def test_license_is_spdx_and_version_has_one_source():
    project = _project()
    assert project["project"]["license"] == "Apache-2.0"
    assert any(
        re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77
        for r in project["build-system"]["requires"]
    )
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pbkit.__version__"}


def test_all_installs_every_extra():
    project = _project()
    assert _requirements(project, "all") == set().union(
        *(_requirements(project, e) for e in ("zoo", "sim", "learn", "net"))
    )


def test_every_import_is_declared_in_its_area():
    project = _project()
    dists = {mod: {_norm(d) for d in ds} for mod, ds in packages_distributions().items()}
    missing = []
    for package in sorted(OWN):
        for path in sorted((ROOT / package).rglob("*.py")):
            declared = _requirements(project, _area(path))
            for module in sorted(_imports(path)):
                candidates = dists.get(module, {_norm(module)})
                if not candidates & declared:
                    missing.append(
                        f"{path.relative_to(ROOT)}: {module} ({'/'.join(sorted(candidates))}) "
                        f"not in {'pbkit[' + _area(path) + ']' if _area(path) else 'the core'}"
                    )
    assert not missing, "\n".join(missing)


def test_tests_do_not_skip_on_a_missing_dependency():
    """A broken install must fail the tests, not skip them: no importorskip of a declared package."""
    project = _project()
    declared = _requirements(project, "all") | _requirements(project, "test")
    dists = {mod: {_norm(d) for d in ds} for mod, ds in packages_distributions().items()}
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for module in re.findall(r"importorskip\(\s*[\"']([\w.]+)", path.read_text()):
            top = module.split(".")[0]
            if dists.get(top, {_norm(top)}) & declared:
                offenders.append(f"{path.relative_to(ROOT)}: importorskip({module!r})")
    assert not offenders, offenders
