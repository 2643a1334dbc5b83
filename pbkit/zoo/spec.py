"""Zoo specs: which families of real models to build (a base, fine-tunes, PEFT adapters).

A spec is a YAML (or TOML) file, found and read by the one settings loader
(pbkit.common.settings); the schema is documented in docs/zoo.md. Parsing is strict: an unknown
key, a wrong type or an out-of-range value is a `ZooSpecError` naming the file and the key path
(e.g. `families[0].adapters[2].r`), so a typo never silently changes what is built.

Keys use the plan specs' vocabulary (pbkit.library.plan, docs/plans.md): `finetunes`,
`frozen_blocks`, an adapter's `type`. The zoo's old names (`task_models`, `frozen_layers`,
`peft_type`) are read for one release with a one-line SettingsDeprecationWarning (RENAMED).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import blake3

from pbkit.common.settings import find_settings_file, load_typed, read_settings, renamed_keys
from pbkit.errors import PbkitError
from pbkit.model.dtypes import CAST_DTYPES

# Bump when the builder changes what a spec entry produces, so stale zoo outputs are rebuilt.
BUILDER_VERSION = 1

BASE_SOURCES = ("bundled", "path", "hub", "tiny")
TINY_ARCHS = ("gpt2", "llama", "bert")
TASKS = ("classification", "regression", "lm")
PEFT_TYPES = ("lora", "ia3")
SAVE_DTYPES = tuple(d for d in CAST_DTYPES if d != "float32")  # a zoo entry only narrows
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

# Training defaults when neither the entry nor its family's `defaults` sets them: a few real
# optimiser steps on small batches keep the default zoo under two minutes on two cores.
TRAIN_DEFAULTS: dict[str, Any] = {
    "task": "classification",
    "num_labels": 2,
    "steps": 3,
    "lr": 5e-4,
    "batch_size": 8,
    "seq_len": 32,
}
_DEFAULTABLE = tuple(TRAIN_DEFAULTS)

# old zoo key -> the one vocabulary's key, per level of the spec (accepted until the next release)
RENAMED: dict[str, dict[str, str]] = {
    "family": {"task_models": "finetunes"},
    "finetune": {"frozen_layers": "frozen_blocks"},
    "adapter": {"peft_type": "type"},
}


class ZooSpecError(PbkitError, ValueError):
    """A zoo spec file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class BaseSpec:
    """Where a family's base comes from: the bundled MiniLM, a local HF dir, a hub id, or a
    tiny model built locally from a transformers config (`tiny: gpt2|llama|bert`)."""

    source: str
    value: str = ""
    revision: str | None = None
    seed: int = 0

    def identity(self) -> dict[str, Any]:
        """What determines the base's bytes (hashed into every child's spec hash)."""
        if self.source == "bundled":
            return {"source": "bundled"}
        if self.source == "tiny":
            return {"source": "tiny", "arch": self.value, "seed": self.seed}
        if self.source == "hub":
            return {"source": "hub", "id": self.value, "revision": self.revision}
        return {"source": "path", "path": self.value}


@dataclass(frozen=True)
class FinetuneEntrySpec:
    """A fine-tune of the family base: bottom `frozen_blocks` blocks frozen (0 = full fine-tune).
    `dtype` casts the saved checkpoint's floating tensors (an fp16/bf16 release of the model)."""

    name: str
    task: str
    num_labels: int
    frozen_blocks: int
    steps: int
    lr: float
    batch_size: int
    seq_len: int
    seed: int
    dtype: str | None = None


@dataclass(frozen=True)
class AdapterEntrySpec:
    """A PEFT adapter on the family base (LoRA or IA3)."""

    name: str
    type: str  # "lora" | "ia3"
    r: int
    alpha: int
    target_modules: tuple[str, ...]
    modules_to_save: tuple[str, ...]
    task: str
    num_labels: int
    steps: int
    lr: float
    batch_size: int
    seq_len: int
    seed: int


@dataclass(frozen=True)
class FamilySpec:
    name: str
    base: BaseSpec
    finetunes: tuple[FinetuneEntrySpec, ...] = ()
    adapters: tuple[AdapterEntrySpec, ...] = ()

    @property
    def base_name(self) -> str:
        return f"{self.name}-base"

    def model_name(self, entry: FinetuneEntrySpec | AdapterEntrySpec) -> str:
        return f"{self.name}-{entry.name}"


@dataclass(frozen=True)
class ZooSpec:
    name: str
    seed: int
    families: tuple[FamilySpec, ...]
    path: str = field(default="", compare=False)

    def model_names(self) -> list[str]:
        out: list[str] = []
        for fam in self.families:
            out.append(fam.base_name)
            out.extend(fam.model_name(e) for e in fam.finetunes)
            out.extend(fam.model_name(e) for e in fam.adapters)
        return out


def spec_hash(payload: dict[str, Any]) -> str:
    """Hex BLAKE3 of canonical JSON (equal specs give equal hashes on any machine)."""
    text = json.dumps({"builder": BUILDER_VERSION, **payload}, sort_keys=True, separators=(",", ":"))
    return blake3.blake3(text.encode()).hexdigest()[:32]


def derive_seed(master: int, name: str) -> int:
    """Per-model seed from the master seed and the model's full name, independent of the order
    models appear in (so adding a model never changes another one's bytes)."""
    digest = blake3.blake3(f"{master}\0{name}".encode()).digest(length=4)
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


# ---------------------------------------------------------------- the keys of each level
# Each level of a spec file is first read by the one loader (`load_typed`): unknown keys and
# ill-typed values fail there, in one line naming the file, the entry and the key. Every key is
# optional at that stage (None: not given); what a key means (defaults inherited from the
# family, derived seeds, ranges, keys that exclude each other) is checked below it.
@dataclass(frozen=True)
class _TopKeys:
    name: str | None = None
    seed: int | None = None
    families: Any = None


@dataclass(frozen=True)
class _FamilyKeys:
    name: Any = None
    base: Any = None  # "bundled", a path, or a mapping (_BaseKeys)
    defaults: dict[str, Any] | None = None
    finetunes: Any = None
    adapters: Any = None


@dataclass(frozen=True)
class _BaseKeys:
    bundled: Any = None
    path: Any = None
    hub: Any = None
    revision: Any = None
    tiny: Any = None
    seed: int | None = None


@dataclass(frozen=True)
class _TrainKeys:  # the keys a family's `defaults` may set for its entries
    task: str | None = None
    num_labels: int | None = None
    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    seq_len: int | None = None


@dataclass(frozen=True)
class _FinetuneKeys(_TrainKeys):
    name: Any = None
    frozen_blocks: int | None = None
    seed: int | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class _AdapterKeys(_TrainKeys):
    name: Any = None
    type: str | None = None
    r: int | None = None
    alpha: int | None = None
    target_modules: Any = None  # a list of module names (or one name)
    modules_to_save: Any = None
    seed: int | None = None


# ---------------------------------------------------------------- parsing helpers
class _Ctx:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str) -> ZooSpecError:
        return ZooSpecError(f"{self.where}: {key}: {problem}")

    def mapping(self, value: Any, key: str, keys: type) -> dict[str, Any]:
        """The keys `value` gives, read through the one loader as the key dataclass `keys`."""
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        typed = load_typed(keys, value, f"{self.where}: {key}" if key else self.where, ZooSpecError)
        return {k: getattr(typed, k) for k in value}

    def integer(self, value: Any, key: str, low: int = 0, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise self.fail(key, f"{value} is not {bound}")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self.fail(key, f"expected a positive number, got {value!r}")
        return float(value)

    def choice(self, value: Any, key: str, options: tuple[str, ...]) -> str:
        if value not in options:
            raise self.fail(key, f"{value!r} is not one of {', '.join(options)}")
        return value

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise self.fail(key, f"{value!r} is not a name of lower-case letters, digits, '.', '_' or '-'")
        return value

    def strings(self, value: Any, key: str, allow_empty: bool = True) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        if not value and not allow_empty:
            raise self.fail(key, "must not be empty")
        return tuple(value)


def _parse_base(ctx: _Ctx, raw: Any, key: str, master_seed: int, family: str) -> BaseSpec:
    if raw is None or raw == "bundled":
        return BaseSpec("bundled")
    if isinstance(raw, str):
        raw = {"path": raw}
    m = ctx.mapping(raw, key, _BaseKeys)
    sources = [s for s in BASE_SOURCES if s in m]
    if len(sources) != 1:
        raise ctx.fail(key, "give exactly one of bundled, path, hub, tiny")
    src = sources[0]
    if src != "hub" and "revision" in m:
        raise ctx.fail(f"{key}.revision", "only a hub base has a revision")
    if src != "tiny" and "seed" in m:
        raise ctx.fail(f"{key}.seed", "only a tiny base has a seed")
    if src == "bundled":
        if m["bundled"] is not True:
            raise ctx.fail(f"{key}.bundled", "must be true")
        return BaseSpec("bundled")
    if src == "tiny":
        arch = ctx.choice(m["tiny"], f"{key}.tiny", TINY_ARCHS)
        seed = ctx.integer(m["seed"], f"{key}.seed") if "seed" in m else derive_seed(master_seed, f"{family}-base")
        return BaseSpec("tiny", arch, seed=seed)
    value = m[src]
    if not isinstance(value, str) or not value:
        raise ctx.fail(f"{key}.{src}", f"expected a non-empty string, got {value!r}")
    if src == "hub":
        rev = m.get("revision")
        if rev is not None and not isinstance(rev, str):
            raise ctx.fail(f"{key}.revision", f"expected a string, got {rev!r}")
        return BaseSpec("hub", value, revision=rev)
    return BaseSpec("path", value)


def _train_fields(ctx: _Ctx, m: dict[str, Any], defaults: dict[str, Any], key: str) -> dict[str, Any]:
    merged = {**TRAIN_DEFAULTS, **defaults, **{k: m[k] for k in _DEFAULTABLE if k in m}}
    task = ctx.choice(merged["task"], f"{key}.task", TASKS)
    return {
        "task": task,
        # An LM head has no label count; keep the field fixed so it does not perturb the hash.
        "num_labels": 0
        if task == "lm"
        else (1 if task == "regression" else ctx.integer(merged["num_labels"], f"{key}.num_labels", 2, 1000)),
        "steps": ctx.integer(merged["steps"], f"{key}.steps", 1, 10_000),
        "lr": ctx.number(merged["lr"], f"{key}.lr"),
        "batch_size": ctx.integer(merged["batch_size"], f"{key}.batch_size", 1, 4096),
        "seq_len": ctx.integer(merged["seq_len"], f"{key}.seq_len", 2, 4096),
    }


def _renamed(ctx: _Ctx, raw: Any, key: str, level: str) -> Any:
    """`raw` with the level's old key names read as the new ones (a warning each)."""
    if not isinstance(raw, dict):
        return raw
    return renamed_keys(raw, RENAMED[level], f"{ctx.where}: {key}" if key else ctx.where, ZooSpecError)


def _parse_task(ctx: _Ctx, raw: Any, key: str, defaults: dict[str, Any], master: int, family: str) -> FinetuneEntrySpec:
    m = ctx.mapping(_renamed(ctx, raw, key, "finetune"), key, _FinetuneKeys)
    if "name" not in m:
        raise ctx.fail(f"{key}.name", "missing")
    name = ctx.name(m["name"], f"{key}.name")
    if "frozen_blocks" not in m:
        raise ctx.fail(f"{key}.frozen_blocks", "missing (0 = full fine-tune)")
    dtype = m.get("dtype")
    if dtype is not None:
        ctx.choice(dtype, f"{key}.dtype", SAVE_DTYPES)
    return FinetuneEntrySpec(
        name=name,
        frozen_blocks=ctx.integer(m["frozen_blocks"], f"{key}.frozen_blocks", 0, 1000),
        seed=ctx.integer(m["seed"], f"{key}.seed") if "seed" in m else derive_seed(master, f"{family}-{name}"),
        dtype=dtype,
        **_train_fields(ctx, m, defaults, key),
    )


def _parse_adapter(
    ctx: _Ctx, raw: Any, key: str, defaults: dict[str, Any], master: int, family: str
) -> AdapterEntrySpec:
    m = ctx.mapping(_renamed(ctx, raw, key, "adapter"), key, _AdapterKeys)
    if "name" not in m:
        raise ctx.fail(f"{key}.name", "missing")
    name = ctx.name(m["name"], f"{key}.name")
    peft_type = ctx.choice(m.get("type", "lora"), f"{key}.type", PEFT_TYPES)
    if peft_type == "ia3" and ("r" in m or "alpha" in m):
        raise ctx.fail(f"{key}.r" if "r" in m else f"{key}.alpha", "IA3 has no rank or alpha")
    r = ctx.integer(m.get("r", 8), f"{key}.r", 1, 4096) if peft_type == "lora" else 0
    alpha = ctx.integer(m.get("alpha", 2 * r), f"{key}.alpha", 1, 1 << 20) if peft_type == "lora" else 0
    return AdapterEntrySpec(
        name=name,
        type=peft_type,
        r=r,
        alpha=alpha,
        # Absent: peft's default targets for the architecture.
        target_modules=ctx.strings(m["target_modules"], f"{key}.target_modules", allow_empty=False)
        if "target_modules" in m
        else (),
        modules_to_save=ctx.strings(m.get("modules_to_save", []), f"{key}.modules_to_save"),
        seed=ctx.integer(m["seed"], f"{key}.seed") if "seed" in m else derive_seed(master, f"{family}-{name}"),
        **_train_fields(ctx, m, defaults, key),
    )


def parse_spec(data: Any, where: str = "spec") -> ZooSpec:
    """Validate a spec already loaded into Python objects (from YAML, TOML or code)."""
    ctx = _Ctx(where)
    top = ctx.mapping(data, "", _TopKeys)
    name = ctx.name(top.get("name", "zoo"), "name")
    seed = ctx.integer(top.get("seed", 0), "seed")
    fams_raw = top.get("families")
    if not isinstance(fams_raw, list) or not fams_raw:
        raise ctx.fail("families", "expected a non-empty list of families")
    families: list[FamilySpec] = []
    for f, raw in enumerate(fams_raw):
        key = f"families[{f}]"
        m = ctx.mapping(_renamed(ctx, raw, key, "family"), key, _FamilyKeys)
        if "name" not in m:
            raise ctx.fail(f"{key}.name", "missing")
        fam = ctx.name(m["name"], f"{key}.name")
        defaults = ctx.mapping(m.get("defaults", {}) or {}, f"{key}.defaults", _TrainKeys)
        base = _parse_base(ctx, m.get("base"), f"{key}.base", seed, fam)
        tasks_raw = m.get("finetunes", []) or []
        adapters_raw = m.get("adapters", []) or []
        for k, v in (("finetunes", tasks_raw), ("adapters", adapters_raw)):
            if not isinstance(v, list):
                raise ctx.fail(f"{key}.{k}", f"expected a list, got {type(v).__name__}")
        tasks = tuple(
            _parse_task(ctx, t, f"{key}.finetunes[{i}]", defaults, seed, fam) for i, t in enumerate(tasks_raw)
        )
        adapters = tuple(
            _parse_adapter(ctx, a, f"{key}.adapters[{i}]", defaults, seed, fam) for i, a in enumerate(adapters_raw)
        )
        families.append(FamilySpec(fam, base, tasks, adapters))
    spec = ZooSpec(name=name, seed=seed, families=tuple(families), path=where)
    seen: dict[str, str] = {}
    for f, fam in enumerate(spec.families):
        for model in [fam.base_name] + [fam.model_name(e) for e in fam.finetunes + fam.adapters]:
            if model in seen:
                raise ctx.fail(f"families[{f}]", f"model name {model} is defined twice")
            seen[model] = fam.name
    return spec


def packaged_specs() -> list[str]:
    """Names of the spec files shipped in `pbkit/zoo/specs/` (usable as `pbkit zoo build NAME`)."""
    root = resources.files("pbkit.zoo") / "specs"
    return sorted(p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith((".yaml", ".yml", ".toml")))


def resolve_spec_path(spec: str | Path) -> Path:
    """A path to a spec file, or the name of a packaged spec (e.g. `default`)."""
    root = Path(str(resources.files("pbkit.zoo") / "specs"))
    bundled = {name: root / f"{name}.yaml" for name in packaged_specs() if (root / f"{name}.yaml").is_file()}
    return find_settings_file(spec, bundled, "zoo spec", ZooSpecError)


def load_spec(spec: str | Path) -> ZooSpec:
    """Load and validate a YAML or TOML spec file (or a packaged spec by name)."""
    path = resolve_spec_path(spec)
    data = read_settings(path, ZooSpecError)
    return parse_spec(data, where=str(path))


def entry_payload(entry: FinetuneEntrySpec | AdapterEntrySpec) -> dict[str, Any]:
    """The entry as plain data (lists for tuples), as zoo.json records it."""
    out = asdict(entry)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# the keys the spec hash has always been computed over: renaming a key changes no model's bytes,
# so built zoos stay valid (the hash would otherwise rebuild every model once)
_HASH_KEYS = {"frozen_blocks": "frozen_layers", "type": "peft_type"}


def entry_hash_payload(entry: FinetuneEntrySpec | AdapterEntrySpec) -> dict[str, Any]:
    """`entry_payload` under the keys the spec hash was first defined over."""
    return {_HASH_KEYS.get(k, k): v for k, v in entry_payload(entry).items()}
