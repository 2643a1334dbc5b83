"""Exact PB plans of architectures too large to train or download here.

A plan builds the model on the meta device from its transformers config (no weights, so even a
13B model is instant), derives every tensor `save_pretrained` would write (name, shape, dtype,
file and order) and gives each a deterministic planned PB id. A plan cannot hash real bytes, so
sharing between models is declared by a spec: fine-tunes keep the base ids of their frozen
bottom blocks, LoRA adapters add their own A/B matrices (and `modules_to_save` copies) on top of
the base they need. The result is the same PB library format the store exports.
Rules, defaults and sources: docs/plans.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import blake3

from pbkit.common.settings import load_typed, read_settings
from pbkit.common.sizes import SizeError, parse_size
from pbkit.errors import PbkitError
from pbkit.library import ModelEntry, PBEntry, PBLibrary
from pbkit.library.grouping import group_tensors, layer_key, parse_member
from pbkit.model.dtypes import CAST_DTYPES, DTYPE_SIZES, st_code

PLANS_DIR = Path(__file__).resolve().parent / "plans"
CONFIGS_DIR = PLANS_DIR / "configs"

# transformers' save_pretrained default; the shard layout decides file names and tensor order.
DEFAULT_MAX_SHARD_SIZE = "50GB"
_ID_DOMAIN = "pbkit-plan-v1"

# safetensors lays data out by dtype (this order, widest first) then by name; measured on
# safetensors 0.8 and checked against a real save in tests/plan.
_ST_DATA_ORDER = (
    "U64",
    "I64",
    "F64",
    "C64",
    "F32",
    "U32",
    "I32",
    "BF16",
    "F16",
    "U16",
    "I16",
    "F8_E4M3",
    "F8_E5M2",
    "I8",
    "U8",
    "BOOL",
)
# Float dtypes a plan may be cast to with --dtype / `dtype:`.
FLOAT_DTYPES = CAST_DTYPES


class PlanError(PbkitError, ValueError):
    """A plan config or spec is missing, malformed or inconsistent."""


# ---------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of a planned checkpoint; satisfies `pbkit.library.grouping.TensorLike`."""

    name: str
    dtype: str  # safetensors code, e.g. "F16"
    shape: tuple[int, ...]
    pb: str
    nbytes: int
    file: str = "model.safetensors"
    is_param: bool = True  # False for persistent buffers (BatchNorm running stats, ...)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class PlannedModel:
    """A planned model: the tensors of its own checkpoint and, for adapters, the base tensors it
    also needs to run. `needs` is what a user must receive to use it."""

    name: str
    kind: str  # "base" | "full-finetune" | "partial-finetune" | "adapter"
    architecture: str
    tensors: tuple[PlannedTensor, ...]
    base: str | None = None
    base_tensors: tuple[PlannedTensor, ...] = ()

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors if t.is_param)

    @property
    def needs(self) -> tuple[PlannedTensor, ...]:
        return self.base_tensors + self.tensors


@dataclass
class Plan:
    models: list[PlannedModel]
    source: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> PlannedModel:
        for m in self.models:
            if m.name == name:
                return m
        raise PlanError(f"plan has no model {name!r}")

    def to_library(self, granularity: str = "tensor", max_bytes: int | None = None) -> PBLibrary:
        """The PB library of this plan. Each model lists every PB it needs. An adapter needs
        the PBs of its base (as grouped in the base's own checkpoint, those holding any tensor
        it uses) and then its own; base and adapter weights never share a group."""
        pbs: dict[str, PBEntry] = {}
        models: list[ModelEntry] = []
        own_groups = {m.name: group_tensors(m.tensors, granularity, max_bytes) for m in self.models}
        for m in self.models:
            groups = []
            if m.base_tensors:
                if m.base not in own_groups:
                    raise PlanError(f"adapter {m.name}: base {m.base!r} is not in this plan")
                used = {t.pb for t in m.base_tensors}
                groups += [g for g in own_groups[m.base] if any(parse_member(x)[0] in used for x in g.members)]
            groups += own_groups[m.name]
            for g in groups:
                if g.id not in pbs:
                    pbs[g.id] = PBEntry(id=g.id, bytes=g.bytes, label=g.label, tensors=g.tensors)
                elif pbs[g.id].bytes != g.bytes:  # would mean an id collision
                    raise PlanError(f"PB {g.id} has two sizes ({pbs[g.id].bytes}, {g.bytes})")
            models.append(
                ModelEntry(
                    name=m.name,
                    pbs=tuple(dict.fromkeys(g.id for g in groups)),  # a model needs each PB once
                    id=_digest("model", m.name),
                    kind=m.kind,
                    base=m.base,
                )
            )
        source = dict(self.source)
        source["kind"] = "plan"
        if max_bytes is not None:
            source["max_bytes"] = int(max_bytes)
        return PBLibrary(
            pbs=list(pbs.values()),
            models=models,
            granularity=granularity,
            source=source,
            synthetic=False,
        )


# ---------------------------------------------------------------------------- ids
def _digest(*parts: object) -> str:
    text = "\n".join([_ID_DOMAIN, *(str(p) for p in parts)])
    return blake3.blake3(text.encode("utf-8")).hexdigest()


def base_pb_id(family: str, canonical_name: str, dtype: str, shape: Sequence[int]) -> str:
    """Planned id of a base tensor: the same in every model of the family that keeps it
    unchanged (same name within the base model, dtype and shape)."""
    return _digest("base", family, canonical_name, dtype, "x".join(map(str, shape)))


def own_pb_id(model: str, canonical_name: str, dtype: str, shape: Sequence[int]) -> str:
    """Planned id of a tensor a model changed (trained) itself: never shared."""
    return _digest("own", model, canonical_name, dtype, "x".join(map(str, shape)))


# ---------------------------------------------------------------------------- configs
def shipped_configs() -> list[str]:
    """Names of the architecture configs shipped in pbkit/library/plans/configs."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.json"))


def resolve_config_path(arch: str | Path, relative_to: Path | None = None) -> Path:
    """A config file path, or the name of a shipped config (e.g. `llama-2-7b`)."""
    candidates = [Path(arch)]
    if relative_to is not None and not Path(arch).is_absolute():
        candidates.insert(0, relative_to / arch)
    candidates.append(CONFIGS_DIR / f"{arch}.json")
    for path in candidates:
        if path.is_file():
            return path
    raise PlanError(f"{arch}: no such config file and not a shipped config ({', '.join(shipped_configs())})")


def load_config(arch: str | Path, relative_to: Path | None = None, overrides: dict | None = None):
    """Load a transformers config from a config.json file (or a shipped name)."""
    from transformers import CONFIG_MAPPING

    path = resolve_config_path(arch, relative_to)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: top level is not a JSON object")
    data = {k: v for k, v in data.items() if not k.startswith("_pbkit")}  # our citation notes
    data.update(overrides or {})
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise PlanError(f"{path}: model_type {model_type!r} is not a transformers model type")
    try:
        config = CONFIG_MAPPING[model_type].from_dict(data)
    except Exception as exc:  # transformers raises many types for a bad field
        raise PlanError(f"{path}: transformers rejects this config ({exc})".splitlines()[0]) from None
    return config, path


def _architecture_class(config, architecture: str | None, where: str):
    import transformers

    name = architecture or (config.architectures or [None])[0]
    if not name:
        raise PlanError(f"{where}: config has no `architectures` entry; name the model class")
    cls = getattr(transformers, name, None)
    if cls is None or not hasattr(cls, "_from_config"):
        raise PlanError(f"{where}: {name!r} is not a transformers model class")
    return cls


def _torch_dtype(name: str | None, where: str):
    import torch

    if name is None:
        return None
    name = str(name).removeprefix("torch.")
    if name not in FLOAT_DTYPES:
        raise PlanError(f"{where}: dtype {name!r} is not one of {', '.join(FLOAT_DTYPES)}")
    return getattr(torch, name)


def build_meta_model(config, architecture: str | None = None, dtype: str | None = None, where: str = "config"):
    """Instantiate the model class on the meta device: real module tree, no storage.

    The dtype is `dtype` if given, else the config's own (`dtype`/`torch_dtype`), else float32,
    matching what a checkpoint saved by that model holds.
    """
    import torch

    cls = _architecture_class(config, architecture, where)
    wanted = _torch_dtype(dtype, where)
    if wanted is None:
        own = getattr(config, "dtype", None)  # transformers 5 reads a config's torch_dtype into dtype
        wanted = _torch_dtype(str(own), where) if own not in (None, "auto") else torch.float32
    try:
        with torch.device("meta"):
            model = cls._from_config(config, dtype=wanted)
    except PbkitError:
        raise
    except Exception as exc:
        raise PlanError(f"{where}: cannot build {cls.__name__} ({exc})".splitlines()[0]) from None
    return model


def _st_dtype(torch_dtype) -> str:
    try:
        return st_code(str(torch_dtype))
    except KeyError:
        raise PlanError(f"dtype {torch_dtype} has no safetensors code") from None


@dataclass(frozen=True)
class _RawTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    is_param: bool
    file: str = "model.safetensors"


def _file_order(tensors: Iterable[_RawTensor]) -> list[_RawTensor]:
    """Order of tensors as safetensors writes them within one file."""
    rank = {d: i for i, d in enumerate(_ST_DATA_ORDER)}
    return sorted(tensors, key=lambda t: (rank[t.dtype], t.name))


def _assign_shards(tensors: list[_RawTensor], max_shard_size: int | str, weights_name: str) -> list[_RawTensor]:
    """File of each tensor as save_pretrained shards it (huggingface_hub's splitter), then the
    tensors in checkpoint order: file by file, safetensors data order within a file."""
    from huggingface_hub import split_state_dict_into_shards_factory

    by_name = {t.name: t for t in tensors}
    pattern = weights_name.replace(".safetensors", "{suffix}.safetensors")
    split = split_state_dict_into_shards_factory(
        {t.name: t for t in tensors},
        get_storage_size=lambda t: t.nbytes,
        filename_pattern=pattern,
        # bytes from pbkit's parser: huggingface_hub's own refuses `64MiB`
        max_shard_size=parse_size(max_shard_size, "max_shard_size", minimum=1),
    )
    out: list[_RawTensor] = []
    for filename in sorted(split.filename_to_tensors):
        names = split.filename_to_tensors[filename]
        out.extend(
            _file_order(
                _RawTensor(n, by_name[n].dtype, by_name[n].shape, by_name[n].nbytes, by_name[n].is_param, filename)
                for n in names
            )
        )
    return out


def checkpoint_tensors(model, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> list[_RawTensor]:
    """Every tensor `model.save_pretrained` writes, in checkpoint order.

    Uses transformers' own save path on the meta model: `state_dict()` (persistent buffers in,
    non-persistent out), `_keys_to_ignore_on_save`, tied-weight removal (one copy of each tied
    group, the one transformers keeps) and the reverse weight conversion.
    """
    from transformers.core_model_loading import revert_weight_conversion
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    state = model.state_dict()
    for key in getattr(model, "_keys_to_ignore_on_save", None) or ():
        state.pop(key, None)
    state = remove_tied_weights_from_state_dict(state, model)
    # Reverting transformers 5's renamings (e.g. ViT's `layers.0.attention.q_proj` back to the
    # published `encoder.layer.0.attention.attention.query`) is done for parameters and
    # buffers apart, so each saved name is still known to be a parameter or a buffer.
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    raw = []
    for is_param in (True, False):
        part = {k: v for k, v in state.items() if (k in params) == is_param}
        for name, tensor in (revert_weight_conversion(model, part) if part else {}).items():
            dtype = _st_dtype(tensor.dtype)
            shape = tuple(int(s) for s in tensor.shape)
            raw.append(_RawTensor(name, dtype, shape, math.prod(shape) * DTYPE_SIZES[dtype], is_param))
    return _assign_shards(raw, max_shard_size, "model.safetensors")


def _natural_key(name: str) -> tuple:
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in name.split("."))


def _depth_order_blocks(raw: Sequence[_RawTensor]) -> list[str]:
    """Block keys (layer grouping) of the saved names in depth order: names sorted with numeric
    segments as numbers (`layer.2` before `layer.10`, unlike the file's alphabetical order).
    The model's own module order cannot be used: transformers 5 renames some modules
    internally (ViT's `layers.0`) and writes the published names back on save."""
    seen: dict[str, None] = {}
    for name in sorted((t.name for t in raw), key=_natural_key):
        key = layer_key(name)
        if key.kind == "block":
            seen.setdefault(key.path, None)
    return list(seen)


def _canonical(name: str, prefix: str) -> str:
    """A tensor name without the task model's base-model prefix (`bert.`, `model.`, ...), so that
    BertModel and BertForSequenceClassification give their shared body the same ids."""
    return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + ".") else name


# ---------------------------------------------------------------------------- base plans
@dataclass
class _Built:
    """A meta model with its checkpoint tensors, as the spec planner needs it."""

    model: Any
    raw: list[_RawTensor]
    prefix: str
    blocks: list[str]
    architecture: str


def _build(config, architecture, dtype, where, max_shard_size) -> _Built:
    model = build_meta_model(config, architecture, dtype, where)
    raw = checkpoint_tensors(model, max_shard_size)
    return _Built(
        model, raw, getattr(model, "base_model_prefix", "") or "", _depth_order_blocks(raw), type(model).__name__
    )


def plan_base(
    arch: str | Path,
    dtype: str | None = None,
    name: str | None = None,
    architecture: str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
) -> Plan:
    """Plan one base model from a config file (or shipped config name) alone; it is named `name`,
    else after its architecture class for a file named `config.json`, else the file's stem."""
    config, path = load_config(arch)
    built = _build(config, architecture, dtype, str(path), max_shard_size)
    # A file named config.json (transformers' name for every model) says nothing: use the class.
    family = name or (built.architecture if path.stem == "config" else path.stem)
    model = PlannedModel(
        name=family,
        kind="base",
        architecture=built.architecture,
        tensors=_base_tensors(built, family),
    )
    return Plan([model], source={"config": str(path), "architecture": built.architecture, "dtype": dtype})


def _base_tensors(built: _Built, family: str) -> tuple[PlannedTensor, ...]:
    return tuple(
        PlannedTensor(
            t.name,
            t.dtype,
            t.shape,
            base_pb_id(family, _canonical(t.name, built.prefix), t.dtype, t.shape),
            t.nbytes,
            t.file,
            t.is_param,
        )
        for t in built.raw
    )


# ---------------------------------------------------------------------------- spec plans
# A plan spec is settings of the one loader (pbkit.common.settings): each level a dataclass read
# by `load_typed`, so an unknown key or a value of the wrong type is one line naming the file,
# the entry and the key. Its vocabulary (finetunes, frozen_blocks, an adapter's type) is the
# zoo spec's too (docs/zoo.md says why).
@dataclass(frozen=True)
class PlanFinetune:
    """A fine-tune of the family's base: its bottom `frozen_blocks` blocks keep the base's PBs."""

    name: str
    frozen_blocks: int = 0
    freeze_embeddings: bool | None = None  # None: frozen when frozen_blocks > 0
    architecture: str | None = None  # another model class (e.g. a sequence-classification head)
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the family's config
    dtype: str | None = None  # None: the family's
    count: int = 1  # this many copies, named NAME-0 .. NAME-(count-1)


@dataclass(frozen=True)
class PlanAdapter:
    """A PEFT adapter on the family's base (only LoRA is planned)."""

    name: str
    type: str = "lora"
    r: int = 8
    target_modules: Any = None  # a regex string, "all-linear" or a list of module names
    modules_to_save: tuple[str, ...] = ()
    dtype: str = "float32"  # PEFT keeps adapters of fp16/bf16 bases in float32
    architecture: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    bias: str = "none"
    count: int = 1


@dataclass(frozen=True)
class PlanFamily:
    """A base (a config file or shipped config name), its fine-tunes and its adapters."""

    name: str
    arch: str
    dtype: str | None = None
    architecture: str | None = None
    finetunes: tuple[Any, ...] = ()  # PlanFinetune mappings, read by `load_spec`
    adapters: tuple[Any, ...] = ()  # PlanAdapter mappings
    max_shard_size: Any = DEFAULT_MAX_SHARD_SIZE  # bytes or a size such as 64MiB (pbkit.common.sizes)


@dataclass(frozen=True)
class PlanSpec:
    """A plan spec file: its families (the only key)."""

    families: tuple[Any, ...] = ()


def _entries(cls: type, entries: tuple[Any, ...], where: str) -> list[Any]:
    """The entries of a family list as `cls` instances, `count: n` expanded into n named copies."""
    out = []
    for i, raw in enumerate(entries):
        entry = load_typed(cls, raw, f"{where}[{i}]", PlanError)
        if entry.count < 1:
            raise PlanError(f"{where}[{i}] {entry.name}: count {entry.count!r} is not a positive integer")
        if entry.count == 1:
            out.append(entry)
            continue
        out.extend(dataclasses.replace(entry, name=f"{entry.name}-{c}", count=1) for c in range(entry.count))
    return out


def load_spec(path: str | Path) -> PlanSpec:
    """A plan spec file as a PlanSpec whose families are PlanFamily instances (their entries are
    read by `plan_spec`). Raises PlanError naming the file, the entry and the key."""
    path = Path(path)
    spec = load_typed(PlanSpec, read_settings(path, PlanError), str(path), PlanError)
    if not spec.families:
        raise PlanError(f"{path}: a plan spec needs a non-empty list `families`")
    families = tuple(
        load_typed(PlanFamily, f, f"{path}: families[{i}]", PlanError) for i, f in enumerate(spec.families)
    )
    return PlanSpec(families)


def _shard_size(fam: PlanFamily, where: str) -> int:
    """A family's `max_shard_size` in bytes through pbkit's one size parser (`64MiB`, `2GB`, ...)."""
    try:
        return parse_size(fam.max_shard_size, f"{where}: max_shard_size", minimum=1)
    except SizeError as exc:
        raise PlanError(str(exc)) from None


def plan_spec(path: str | Path, dtype: str | None = None) -> Plan:
    """Plan every family of a spec file: each base, its fine-tunes and its adapters.

    `dtype` overrides every family's base dtype (not adapter dtypes). Raises PlanError.
    """
    path = Path(path)
    spec = load_spec(path)
    models: list[PlannedModel] = []
    names: set[str] = set()
    cache: dict = {}
    for fi, fam in enumerate(spec.families):
        where = f"{path}: families[{fi}]"
        family = fam.name
        fam_dtype = dtype or fam.dtype
        shard = _shard_size(fam, where)
        base = _variant(fam, {}, None, fam_dtype, shard, path, where, cache)
        planned = [PlannedModel(family, "base", base.architecture, _base_tensors(base, family))]
        for ft in _entries(PlanFinetune, fam.finetunes, f"{where}.finetunes"):
            planned.append(_plan_finetune(fam, family, base, ft, fam_dtype, shard, path, where, cache))
        for ad in _entries(PlanAdapter, fam.adapters, f"{where}.adapters"):
            planned.append(_plan_adapter(fam, family, base, planned[0], ad, fam_dtype, shard, path, where, cache))
        for m in planned:
            if m.name in names:
                raise PlanError(f"{path}: model name {m.name!r} is used twice")
            names.add(m.name)
        models.extend(planned)
    return Plan(models, source={"spec": str(path), "dtype": dtype})


def _variant(
    fam: PlanFamily, overrides: dict, architecture: str | None, dtype, shard, path: Path, where: str, cache: dict
) -> _Built:
    """The meta model of a fine-tune or adapter: the family's config with the entry's
    `overrides`, possibly another `architecture` (e.g. a sequence-classification head).
    Builds are cached per plan by everything that shapes the model (`count:` copies reuse one)."""
    arch = architecture or fam.architecture
    key = (str(fam.arch), json.dumps(overrides, sort_keys=True, default=str), arch, dtype, str(shard))
    if key not in cache:
        config, cfg_path = load_config(fam.arch, relative_to=path.parent, overrides=overrides)
        cache[key] = _build(config, arch, dtype, f"{where} ({cfg_path.name})", shard)
    return cache[key]


def _plan_finetune(
    fam: PlanFamily, family, base: _Built, ft: PlanFinetune, fam_dtype, shard, path, where, cache
) -> PlannedModel:
    name = ft.name
    where = f"{where} finetune {name}"
    dtype = ft.dtype if ft.dtype is not None else fam_dtype
    built = _variant(fam, ft.config, ft.architecture, dtype, shard, path, where, cache)
    k = ft.frozen_blocks
    if not 0 <= k <= len(built.blocks):
        raise PlanError(f"{where}: frozen_blocks {k!r} is not in 0..{len(built.blocks)}")
    freeze_embeddings = ft.freeze_embeddings if ft.freeze_embeddings is not None else k > 0
    frozen_blocks = set(built.blocks[:k])
    tensors = []
    for t in built.raw:
        canon = _canonical(t.name, built.prefix)
        key = layer_key(t.name)
        frozen = (key.kind == "block" and key.path in frozen_blocks) or (key.kind == "embeddings" and freeze_embeddings)
        # A frozen tensor is the base's own bytes (cast to this dtype): it keeps the base id.
        pb = base_pb_id(family, canon, t.dtype, t.shape) if frozen else own_pb_id(name, canon, t.dtype, t.shape)
        tensors.append(PlannedTensor(t.name, t.dtype, t.shape, pb, t.nbytes, t.file, t.is_param))
    kind = "partial-finetune" if (k > 0 or freeze_embeddings) else "full-finetune"
    return PlannedModel(name, kind, built.architecture, tuple(tensors), base=family)


def _target_matches(module_name: str, targets: Any) -> bool:
    """PEFT's rule: a regex string must fullmatch; a list entry matches the module name or its
    last dotted components."""
    if isinstance(targets, str):
        return re.fullmatch(targets, module_name) is not None
    return any(module_name == t or module_name.endswith("." + t) for t in targets)


def _plan_adapter(
    fam: PlanFamily,
    family,
    base: _Built,
    base_model: PlannedModel,
    ad: PlanAdapter,
    fam_dtype,
    shard,
    path,
    where,
    cache,
) -> PlannedModel:
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    name = ad.name
    where = f"{where} adapter {name}"
    if ad.type != "lora":
        raise PlanError(f"{where}: adapter type {ad.type!r} is not supported (only lora)")
    r = ad.r
    if r < 1:
        raise PlanError(f"{where}: rank r {r!r} is not a positive integer")
    if ad.bias != "none":
        raise PlanError(f"{where}: only bias: none is planned")
    targets = ad.target_modules
    if not (
        isinstance(targets, str) or (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets))
    ):
        raise PlanError(f"{where}: target_modules must be a regex string or a non-empty list of names")
    to_save = list(ad.modules_to_save)
    # PEFT keeps LoRA weights in float32 when the base is fp16/bf16 (autocast_adapter_dtype=True).
    ad_dtype = _st_dtype(_torch_dtype(ad.dtype, where))
    built = _variant(fam, ad.config, ad.architecture, fam_dtype, shard, path, where, cache)
    model = built.model
    output_layer = None
    if targets == "all-linear":
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        output_layer = out
        targets = None

    def in_modules_to_save(module_name: str) -> bool:
        return any(module_name == m or module_name.endswith("." + m) for m in to_save)

    adapter: list[_RawTensor] = []
    saved_modules: list[str] = []
    for mod_name, module in model.named_modules():
        if not mod_name:
            continue
        if in_modules_to_save(mod_name):
            saved_modules.append(mod_name)
            continue
        if not isinstance(module, (nn.Linear, Conv1D, nn.Conv2d)):
            continue
        hit = (module is not output_layer) if targets is None else _target_matches(mod_name, targets)
        if not hit or any(mod_name.startswith(s + ".") for s in saved_modules):
            continue
        w = tuple(module.weight.shape)
        if isinstance(module, nn.Linear):
            a_shape, b_shape = (r, w[1]), (w[0], r)
        elif isinstance(module, Conv1D):  # weight is (in, out): GPT-2's fused projections
            a_shape, b_shape = (r, w[0]), (w[1], r)
        else:  # Conv2d: A keeps the kernel, B is 1x1 (PEFT's lora.Conv2d)
            a_shape, b_shape = (r, w[1] // module.groups, *w[2:]), (w[0], r, 1, 1)
        for part, shape in (("lora_A", a_shape), ("lora_B", b_shape)):
            n = f"base_model.model.{mod_name}.{part}.weight"
            adapter.append(
                _RawTensor(
                    n, ad_dtype, shape, math.prod(shape) * DTYPE_SIZES[ad_dtype], True, "adapter_model.safetensors"
                )
            )
    if not adapter:
        raise PlanError(f"{where}: target_modules {ad.target_modules!r} match no Linear/Conv1D/Conv2d module")
    missing_saves = [m for m in to_save if not any(s == m or s.endswith("." + m) for s in saved_modules)]
    if missing_saves:
        raise PlanError(f"{where}: modules_to_save {', '.join(missing_saves)} match no module")

    def under_saved(tensor_name: str) -> bool:
        mod_path = tensor_name.rsplit(".", 1)[0]
        return any(mod_path == s or mod_path.startswith(s + ".") for s in saved_modules)

    # modules_to_save are trained copies saved whole, in the base dtype, under the PEFT prefix
    # and (like the LoRA keys) under the live model's module names, which PEFT does not revert.
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    for tname, tensor in model.state_dict().items():
        if under_saved(tname):
            dt = _st_dtype(tensor.dtype)
            shape = tuple(int(s) for s in tensor.shape)
            adapter.append(
                _RawTensor(
                    f"base_model.model.{tname}",
                    dt,
                    shape,
                    math.prod(shape) * DTYPE_SIZES[dt],
                    tname in params,
                    "adapter_model.safetensors",
                )
            )
    base_ids = {(_canonical(t.name, base.prefix), t.dtype, t.shape): t for t in base_model.tensors}
    needed: list[PlannedTensor] = []
    for t in built.raw:
        if under_saved(t.name):
            continue
        hit = base_ids.get((_canonical(t.name, built.prefix), t.dtype, t.shape))
        if hit is None:
            raise PlanError(
                f"{where}: {t.name} is in neither the base checkpoint nor modules_to_save "
                "(PEFT would initialise it randomly); add its module to modules_to_save"
            )
        needed.append(hit)
    own = tuple(
        PlannedTensor(t.name, t.dtype, t.shape, own_pb_id(name, t.name, t.dtype, t.shape), t.nbytes, t.file, t.is_param)
        for t in _file_order(adapter)
    )
    return PlannedModel(name, "adapter", built.architecture, own, base=family, base_tensors=tuple(needed))


# ---------------------------------------------------------------------------- hub headers
def plan_from_hub(repo_id: str, revision: str | None = None) -> Plan:
    """Plan a hub model from its safetensors headers alone (no weights are downloaded).

    Needs the network; offline (HF_HUB_OFFLINE=1 or no connection) it fails with one line.
    """
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    try:
        meta = huggingface_hub.get_safetensors_metadata(repo_id, revision=revision)
    except hub_errors.OfflineModeIsEnabled:
        raise PlanError(
            f"{repo_id}: cannot read safetensors headers from the hub: offline mode is enabled (HF_HUB_OFFLINE)"
        ) from None
    except (hub_errors.HfHubHTTPError, hub_errors.NotASafetensorsRepoError, hub_errors.SafetensorsParsingError) as exc:
        raise PlanError(f"{repo_id}: cannot plan from hub headers ({str(exc).splitlines()[0]})") from None
    except Exception as exc:  # httpx/OS-level network failures have no common hub base class
        raise PlanError(
            f"{repo_id}: cannot reach the hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    return plan_from_metadata(meta, repo_id, revision)


def plan_from_metadata(meta, repo_id: str, revision: str | None = None) -> Plan:
    """Plan from a `huggingface_hub.SafetensorsRepoMetadata` (all shards' headers): the files
    exactly as published, in file and data order."""
    family = f"{repo_id}@{revision or 'main'}"
    tensors: list[PlannedTensor] = []
    for filename in sorted(meta.files_metadata):
        infos = meta.files_metadata[filename].tensors
        for tname, info in sorted(infos.items(), key=lambda kv: kv[1].data_offsets[0]):
            shape = tuple(int(s) for s in info.shape)
            start, end = info.data_offsets
            tensors.append(
                PlannedTensor(
                    tname, info.dtype, shape, base_pb_id(family, tname, info.dtype, shape), int(end - start), filename
                )
            )
    model = PlannedModel(repo_id, "base", "", tuple(tensors))
    return Plan([model], source={"hub": repo_id, "revision": revision})
