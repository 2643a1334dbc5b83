"""What a model directory is: its safetensors files, shard index, legacy pickles and adapter config.

`inspect_layout` validates the structural files (adapter_config.json, shard index, pickle
checkpoints) before anything is written; `classify` turns "is it an adapter / does it have a
base / does it share tensor PBs with that base" into one of the recipe kinds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbkit.errors import PbkitError
from pbkit.model.safetensors_layout import is_safetensors
from pbkit.model.sources import ResolvedSource, check_index_paths, safe_join

ADAPTER_CONFIG = "adapter_config.json"
# Extensions under which a PyTorch pickle may hide; such a file is validated only if it starts
# with a pickle (0x80 protocol byte) or zip ("PK") magic, else it is an ordinary blob.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class ModelLayoutError(PbkitError, ValueError):
    """A structural file of the model (adapter config, shard index) is malformed."""


@dataclass(frozen=True)
class AdapterInfo:
    peft_type: str | None
    base_model: str | None  # adapter_config's base_model_name_or_path
    modules_to_save: tuple[str, ...]


@dataclass(frozen=True)
class ModelLayout:
    files: tuple[str, ...]
    safetensors: tuple[str, ...]  # every *.safetensors file (shards included)
    shard_indexes: tuple[str, ...]  # *.safetensors.index.json files
    shards: tuple[str, ...]  # shard files named by those indexes
    pickles: tuple[str, ...]  # legacy pickle checkpoints (validated, stored as blobs)
    adapter: AdapterInfo | None
    name_or_path: str | None  # config.json's _name_or_path, a hint of the model's base

    @property
    def sharded(self) -> bool:
        return bool(self.shard_indexes)

    def base_hints(self) -> list[str]:
        """Names/paths that might identify the base, most specific first."""
        hints = []
        if self.adapter is not None and self.adapter.base_model:
            hints.append(self.adapter.base_model)
        if self.name_or_path:
            hints.append(self.name_or_path)
        return hints


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLayoutError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None


def looks_like_pickle(path: Path) -> bool:
    if not path.name.endswith(PICKLE_SUFFIXES):
        return False
    with open(path, "rb") as f:
        magic = f.read(4)
    return magic[:1] == b"\x80" or magic == b"PK\x03\x04"


def inspect_layout(src: ResolvedSource) -> ModelLayout:
    """Validate the model's structural files; raises a one-line PbkitError on bad input."""
    root = src.root
    files = src.files
    if not files:
        raise ModelLayoutError(f"{root}: no files to ingest")
    for rel in files:
        safe_join(root, rel)  # every file stays inside the model directory

    adapter = None
    if ADAPTER_CONFIG in files:
        cfg_path = safe_join(root, ADAPTER_CONFIG)
        cfg = _read_json(cfg_path)
        if not isinstance(cfg, dict):
            raise ModelLayoutError(f"{cfg_path}: not a JSON object")
        mts = cfg.get("modules_to_save") or ()
        if isinstance(mts, str):
            mts = (mts,)
        adapter = AdapterInfo(
            peft_type=cfg.get("peft_type") if isinstance(cfg.get("peft_type"), str) else None,
            base_model=cfg.get("base_model_name_or_path")
            if isinstance(cfg.get("base_model_name_or_path"), str)
            else None,
            modules_to_save=tuple(str(m) for m in mts),
        )

    name_or_path = None
    if "config.json" in files:
        try:  # only a hint: a config transformers cannot parse is still stored bit-exact
            cfg = json.loads(safe_join(root, "config.json").read_text(encoding="utf-8"))
            if isinstance(cfg, dict) and isinstance(cfg.get("_name_or_path"), str) and cfg["_name_or_path"]:
                name_or_path = cfg["_name_or_path"]
        except (OSError, UnicodeDecodeError, ValueError):
            pass

    indexes = tuple(f for f in files if f.endswith(".safetensors.index.json"))
    shards: set[str] = set()
    for idx in indexes:
        shards.update(check_index_paths(root, idx))

    pickles = []
    for rel in files:
        path = safe_join(root, rel)
        if looks_like_pickle(path):
            from pbkit.model.legacy_pickle import load_state_dict_safely  # imports torch: only when needed

            load_state_dict_safely(path)  # refuses arbitrary objects (LegacyPickleError)
            pickles.append(rel)

    safetensors = tuple(f for f in files if is_safetensors(f))
    if not safetensors and not pickles:
        # Without weights there is nothing to cut into PBs; storing the files as a "base" model of
        # blobs would hide a wrong path (say, a docs folder) behind a successful ingest.
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise ModelLayoutError(
            f"{root}: no model weights (no *.safetensors file or PyTorch checkpoint such as pytorch_model.bin); found {shown}"
        )

    return ModelLayout(
        files=files,
        safetensors=safetensors,
        shard_indexes=indexes,
        shards=tuple(sorted(shards)),
        pickles=tuple(pickles),
        adapter=adapter,
        name_or_path=name_or_path,
    )


def classify(layout: ModelLayout, has_base: bool, shares_tensor_pbs: bool) -> str:
    """Recipe kind: adapter; else with a base, partial (shares a tensor PB) or full fine-tune; else base."""
    if layout.adapter is not None:
        return "adapter"
    if not has_base:
        return "base"
    return "partial-finetune" if shares_tensor_pbs else "full-finetune"
