"""Build a zoo: train every model of a spec for real, save it in HF format, ingest it.

Layout of a zoo directory (docs/zoo.md):

    ZOO/<model>/            one HF model directory per model (base, fine-tune or adapter)
    ZOO/.zoo/<model>.json   marker: the model's spec hash and the recipe id it was ingested as
    ZOO/zoo.json            manifest of the last build (families, kinds, bases, order)

A model is reused when its directory exists and its marker carries the same spec hash; it is
re-ingested only when the store lacks it (or holds a different recipe under its name). A spec
hash covers the entry, the family base's identity and the builder version, so changing a base
rebuilds its whole family and nothing else.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pbkit.common.fs import atomic_dir, atomic_write_json
from pbkit.errors import PbkitError
from pbkit.zoo.spec import (
    AdapterEntrySpec,
    FamilySpec,
    FinetuneEntrySpec,
    ZooSpec,
    ZooSpecError,
    entry_hash_payload,
    entry_payload,
    spec_hash,
)

MARKER_DIR = ".zoo"
MANIFEST = "zoo.json"
_TMP_PREFIX = ".tmp-build-"


class ZooBuildError(PbkitError, RuntimeError):
    """A zoo model could not be built (another build holds the zoo, training failed): a runtime
    failure, exit 1. What is wrong with the spec itself is a ZooSpecError (exit 2)."""

    exit_code = 1


@dataclass(frozen=True)
class PlannedModel:
    """One model of a spec with what determines its bytes."""

    name: str
    family: str
    role: str  # "base" | "finetune" | "adapter"
    spec_hash: str
    base_name: str | None
    entry: FinetuneEntrySpec | AdapterEntrySpec | None


@dataclass
class BuiltModel:
    name: str
    family: str
    role: str
    path: str
    spec_hash: str
    recipe_id: str
    status: str  # "built" (trained now), "ingested" (dir reused, store entry added), "reused"
    seconds: float
    base: str | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class ZooEvent:
    """Progress of a build: `phase` is "start" or "done" for model `index` of `total`."""

    phase: str
    model: str
    index: int
    total: int
    status: str = ""
    seconds: float = 0.0


@dataclass
class ZooBuildResult:
    spec_name: str
    zoo_dir: str
    models: list[BuiltModel] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.models:
            out[m.status] = out.get(m.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec_name,
            "zoo_dir": self.zoo_dir,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "models": [asdict(m) for m in self.models],
        }


# ---------------------------------------------------------------- planning
def _base_identity(fam: FamilySpec) -> dict[str, Any]:
    ident = fam.base.identity()
    if fam.base.source == "path":
        # A local base is identified by its content, not its path, so edits rebuild the family.
        from pbkit.model.digest import blob_id_file

        root = Path(fam.base.value)
        if not root.is_dir():
            raise ZooSpecError(f"{root}: base directory of family {fam.name} does not exist")
        ident["files"] = {str(p.relative_to(root)): blob_id_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    return ident


def plan_zoo(spec: ZooSpec) -> list[PlannedModel]:
    """Every model of the spec in build order (each base before its children), with hashes."""
    out: list[PlannedModel] = []
    for fam in spec.families:
        base_hash = spec_hash({"role": "base", "base": _base_identity(fam)})
        out.append(PlannedModel(fam.base_name, fam.name, "base", base_hash, None, None))
        for role, entries in (("finetune", fam.finetunes), ("adapter", fam.adapters)):
            for entry in entries:
                h = spec_hash({"role": role, "base": base_hash, "entry": entry_hash_payload(entry)})
                out.append(PlannedModel(fam.model_name(entry), fam.name, role, h, fam.base_name, entry))
    return out


# ---------------------------------------------------------------- building one model
def _copy_model_dir(src: Path, dst: Path) -> None:
    # Follow symlinks (a hub snapshot links into blobs/) so the zoo holds real files.
    # `dst` is the (empty) temporary directory of `atomic_dir`.
    shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns(".git", ".cache"), dirs_exist_ok=True)


def _materialise_base(fam: FamilySpec, tmp: Path) -> None:
    src = fam.base
    if src.source == "bundled":
        from pbkit.zoo.bundled import bundled_model_dir

        _copy_model_dir(bundled_model_dir(), tmp)
    elif src.source == "path":
        _copy_model_dir(Path(src.value), tmp)
    elif src.source == "hub":
        from pbkit.model.sources import resolve_source

        _copy_model_dir(resolve_source(src.value, revision=src.revision).root, tmp)
    else:
        from pbkit.zoo.finetune import build_tiny_model

        build_tiny_model(src.value, tmp, seed=src.seed)


def cast_checkpoint(model_dir: Path, dtype: str) -> None:
    """Cast every floating tensor of the model's safetensors files to `dtype` in place and
    record it in config.json (what an fp16/bf16 release of a checkpoint looks like)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    target = getattr(torch, dtype)
    files = sorted(model_dir.glob("*.safetensors"))
    for path in files:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        tensors = {k: (v.to(target) if v.is_floating_point() else v) for k, v in tensors.items()}
        save_file(tensors, str(path), metadata=meta)
    cfg_path = model_dir / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        cfg["dtype"] = dtype
        cfg.pop("torch_dtype", None)
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _build_into(planned: PlannedModel, fam: FamilySpec, zoo_dir: Path, tmp: Path) -> None:
    from pbkit.zoo import finetune as ft

    if planned.role == "base":
        _materialise_base(fam, tmp)
        return
    base_dir = zoo_dir / fam.base_name
    entry = planned.entry
    if isinstance(entry, FinetuneEntrySpec):
        ft.finetune(
            base_dir,
            tmp,
            ft.FinetuneSpec(
                name=planned.name,
                task=entry.task,
                num_labels=max(entry.num_labels, 1),
                frozen_blocks=entry.frozen_blocks,
                steps=entry.steps,
                lr=entry.lr,
                batch_size=entry.batch_size,
                seq_len=entry.seq_len,
                seed=entry.seed,
            ),
        )
        if entry.dtype is not None:
            cast_checkpoint(tmp, entry.dtype)
        return
    assert isinstance(entry, AdapterEntrySpec)
    ft.train_adapter(
        base_dir,
        tmp,
        ft.AdapterSpec(
            name=planned.name,
            type=entry.type,
            r=entry.r or 8,
            alpha=entry.alpha or 16,
            target_modules=list(entry.target_modules) or None,
            modules_to_save=list(entry.modules_to_save) or None,
            task=entry.task,
            num_labels=max(entry.num_labels, 1),
            steps=entry.steps,
            lr=entry.lr,
            seed=entry.seed,
            batch_size=entry.batch_size,
            seq_len=entry.seq_len,
        ),
    )


def _read_marker(zoo_dir: Path, name: str) -> dict[str, Any] | None:
    path = zoo_dir / MARKER_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # absent or torn: treat as not built
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: Any) -> None:
    atomic_write_json(path, data, indent=1, sort_keys=True)


def _store_recipe_id(store: Any, name: str) -> str | None:
    if name not in set(store.list_models()):
        return None
    return store.recipe(name).id


# ---------------------------------------------------------------- the build
def build_zoo(
    spec: ZooSpec,
    zoo_dir: str | os.PathLike[str],
    store: Any,
    progress: Callable[[ZooEvent], None] | None = None,
    only: set[str] | None = None,
) -> ZooBuildResult:
    """Build (or reuse) every model of `spec` under `zoo_dir` and ingest it into `store`.

    `store` is a `pbkit.store.Store`; `only` restricts the build to the named models (their
    bases are built too, since children train on them).
    """
    zoo_dir = Path(zoo_dir).resolve()
    (zoo_dir / MARKER_DIR).mkdir(parents=True, exist_ok=True)
    with open(zoo_dir / MARKER_DIR / "lock", "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ZooBuildError(f"{zoo_dir}: another `pbkit zoo build` is running on this zoo") from None
        return _build_locked(spec, zoo_dir, store, progress, only)


def _build_locked(
    spec: ZooSpec,
    zoo_dir: Path,
    store: Any,
    progress: Callable[[ZooEvent], None] | None,
    only: set[str] | None,
) -> ZooBuildResult:
    # Leftovers of an interrupted build are never reused.
    for stale in zoo_dir.glob(f"{_TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    plan = plan_zoo(spec)
    if only is not None:
        unknown = sorted(only - {p.name for p in plan})
        if unknown:
            raise ZooSpecError(f"{spec.path or spec.name}: no model named {unknown[0]} in the spec")
        wanted = set(only) | {p.base_name for p in plan if p.name in only and p.base_name}
        plan = [p for p in plan if p.name in wanted]
    families = {f.name: f for f in spec.families}
    result = ZooBuildResult(spec_name=spec.name, zoo_dir=str(zoo_dir))
    recipe_ids: dict[str, str] = {}
    t_all = time.perf_counter()
    for i, planned in enumerate(plan):
        if progress:
            progress(ZooEvent("start", planned.name, i, len(plan)))
        t0 = time.perf_counter()
        fam = families[planned.family]
        out = zoo_dir / planned.name
        marker = _read_marker(zoo_dir, planned.name)
        dir_ok = out.is_dir() and marker is not None and marker.get("spec_hash") == planned.spec_hash
        status = "reused"
        if not dir_ok:
            if out.exists():
                shutil.rmtree(out)  # built from another spec (or torn): never mix versions
            with atomic_dir(out, prefix=f"{_TMP_PREFIX}{planned.name}-") as tmp:
                _build_into(planned, fam, zoo_dir, tmp)
            marker = None
            status = "built"
        recipe_id = _store_recipe_id(store, planned.name)
        stale_base = False
        if recipe_id is not None and planned.base_name is not None:
            # A child pins its base's recipe id; a re-ingested base means re-ingesting the child.
            pinned = store.recipe(planned.name).base
            stale_base = pinned is None or pinned.recipe_id != recipe_ids.get(planned.base_name)
        if marker is None or recipe_id is None or marker.get("recipe_id") != recipe_id or stale_base:
            if recipe_id is not None:
                store.remove(planned.name, cascade=True)  # a different build: its children are re-ingested after it
            store.ingest(out, name=planned.name, base=planned.base_name)
            recipe_id = store.recipe(planned.name).id
            if status == "reused":
                status = "ingested"
        recipe_ids[planned.name] = recipe_id
        dtype = getattr(planned.entry, "dtype", None)
        _write_json_atomic(
            zoo_dir / MARKER_DIR / f"{planned.name}.json",
            {
                "name": planned.name,
                "family": planned.family,
                "role": planned.role,
                "base": planned.base_name,
                "spec_hash": planned.spec_hash,
                "recipe_id": recipe_id,
                "entry": entry_payload(planned.entry) if planned.entry is not None else fam.base.identity(),
            },
        )
        seconds = time.perf_counter() - t0
        result.models.append(
            BuiltModel(
                name=planned.name,
                family=planned.family,
                role=planned.role,
                path=str(out),
                spec_hash=planned.spec_hash,
                recipe_id=recipe_id,
                status=status,
                seconds=seconds,
                base=planned.base_name,
                dtype=dtype,
            )
        )
        if progress:
            progress(ZooEvent("done", planned.name, i, len(plan), status, seconds))
    result.seconds = time.perf_counter() - t_all
    _write_json_atomic(zoo_dir / MANIFEST, result.to_dict())
    return result


def read_manifest(zoo_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Model name -> {family, role, base, ...} from a zoo's markers (empty for a plain dir)."""
    markers = Path(zoo_dir) / MARKER_DIR
    out: dict[str, dict[str, Any]] = {}
    if markers.is_dir():
        for path in sorted(markers.glob("*.json")):
            data = _read_marker(Path(zoo_dir), path.stem)
            if data is not None and (Path(zoo_dir) / path.stem).is_dir():
                out[path.stem] = data
    return out
