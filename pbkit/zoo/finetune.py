"""Real, tiny training runs that produce the model kinds the store must handle.

Everything here is a genuine Hugging Face artefact made with transformers / peft: tiny random
base models built from configs, full and partial fine-tunes (bottom k blocks frozen) and PEFT
adapters (LoRA, IA3, optionally with `modules_to_save`), each trained for a few optimiser steps on
small deterministic data. The zoo builder (`pbkit.zoo`) and the end-to-end tests use them.

Determinism: every run seeds torch from `seed`, draws its data from a `numpy.random.Generator`
made from the same seed, and runs torch on one thread (CPU float reductions depend on the thread
count). Frozen tensors never enter the optimiser, so they are saved bit-identical to the base's
and dedup as parameter blocks.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from pbkit.common.fs import atomic_dir
from pbkit.errors import PbkitError

TINY_ARCHS = ("gpt2", "llama", "bert")
TASKS = ("classification", "regression", "lm")
PEFT_TYPES = ("lora", "ia3")

# Tokenizer files copied from a base directory into a fine-tune, so the fine-tune is usable alone.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)

# Special ids of the tiny models; generated data uses ids >= FIRST_REGULAR_ID.
_TINY_PAD, _TINY_BOS, _TINY_EOS = 0, 1, 2
_FIRST_REGULAR_ID = 3


class FinetuneError(PbkitError, ValueError):
    """A fine-tune or adapter request is invalid (unknown arch/task, bad directory, ...)."""


@dataclass
class FinetuneSpec:
    """A full (`frozen_blocks=0`) or partial fine-tune of a base model."""

    name: str
    task: str = "classification"  # "classification" | "regression" | "lm"
    num_labels: int = 2
    frozen_blocks: int = 0  # bottom k transformer blocks (and the embeddings when k > 0) frozen
    steps: int = 3
    lr: float = 5e-4
    batch_size: int = 8
    seq_len: int = 32
    seed: int = 0


@dataclass
class AdapterSpec:
    """A PEFT adapter trained on top of a frozen base."""

    name: str
    type: str = "lora"  # "lora" | "ia3"
    r: int = 8
    alpha: int = 16
    target_modules: list[str] | None = None  # None: peft's default for the architecture
    modules_to_save: list[str] | None = None
    task: str = "classification"
    num_labels: int = 2
    steps: int = 3
    lr: float = 1e-3
    seed: int = 0
    batch_size: int = 8
    seq_len: int = 32


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[np.random.Generator]:
    """One torch thread and a seeded torch RNG for the block, transformers' load/save reports
    and progress bars silenced; restores the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        with _quiet_transformers():
            yield np.random.default_rng(seed)
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Write into a temporary sibling directory, rename it to `out_dir` only on success."""
    out_dir = Path(out_dir)
    _check_out(out_dir)
    with atomic_dir(out_dir, prefix=f".tmp-{out_dir.name}-") as tmp:
        yield tmp


def _check_out(out_dir: Path) -> None:
    """Fail before any training when the output would be refused anyway."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FinetuneError(f"{out_dir}: output directory exists and is not empty")


def _check_base(base_dir: Path) -> Path:
    base_dir = Path(base_dir)
    if not (base_dir / "config.json").is_file():
        raise FinetuneError(f"{base_dir}: not a Hugging Face model directory (no config.json)")
    return base_dir


def _check_task(task: str, num_labels: int) -> None:
    if task not in TASKS:
        raise FinetuneError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if task == "classification" and num_labels < 2:
        raise FinetuneError(f"num_labels {num_labels} must be >= 2 for classification")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FinetuneError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise FinetuneError(f"{path}: not a JSON object")
    return data


def _token_pool(base_dir: Path, vocab_size: int) -> tuple[np.ndarray, int | None, int | None]:
    """Ids the generated data may use, and the [CLS]/[SEP] ids to wrap sequences with (if any).

    With a WordPiece vocab.txt (BERT, the bundled MiniLM) the pool is every ordinary token of the
    tokenizer's vocabulary (not `[PAD]`, `[unused..]`, `[CLS]`, ...); otherwise it is every id past
    the tiny models' special ids.
    """
    vocab_file = base_dir / "vocab.txt"
    if vocab_file.is_file():
        tokens = vocab_file.read_text(encoding="utf-8").splitlines()[:vocab_size]
        special = re.compile(r"^\[.*\]$")
        pool = np.array([i for i, t in enumerate(tokens) if not special.match(t)], dtype=np.int64)
        index = {t: i for i, t in enumerate(tokens)}
        return pool, index.get("[CLS]"), index.get("[SEP]")
    return np.arange(_FIRST_REGULAR_ID, vocab_size, dtype=np.int64), None, None


def _make_batches(
    rng: np.random.Generator,
    base_dir: Path,
    vocab_size: int,
    task: str,
    num_labels: int,
    steps: int,
    batch_size: int,
    seq_len: int,
) -> list[dict[str, torch.Tensor]]:
    """Deterministic synthetic data: token sequences from the vocabulary and a label rule.

    Classification label = (first content token id) mod num_labels; regression target = that id
    scaled to [0, 1); "lm" has the sequence itself as next-token labels. The rules are learnable,
    which keeps the gradients meaningful, but nothing here aims at accuracy.
    """
    pool, cls_id, sep_id = _token_pool(base_dir, vocab_size)
    wrap = cls_id is not None and sep_id is not None and task != "lm"
    body = seq_len - 2 if wrap else seq_len
    if body < 1:
        raise FinetuneError(f"seq_len {seq_len} is too short")
    batches = []
    for _ in range(steps):
        ids = rng.choice(pool, size=(batch_size, body))
        first = ids[:, 0]
        if wrap:
            ids = np.concatenate([np.full((batch_size, 1), cls_id), ids, np.full((batch_size, 1), sep_id)], axis=1)
        input_ids = torch.from_numpy(ids.astype(np.int64))
        batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if task == "classification":
            batch["labels"] = torch.from_numpy((first % num_labels).astype(np.int64))
        elif task == "regression":
            batch["labels"] = torch.from_numpy(((first % 1000) / 1000.0).astype(np.float32))
        else:
            batch["labels"] = input_ids.clone()
        batches.append(batch)
    return batches


def _task_model_kwargs(task: str, num_labels: int) -> dict:
    if task == "classification":
        return {"num_labels": num_labels, "problem_type": "single_label_classification"}
    if task == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    return {}


def _load_task_model(base_dir: Path, task: str, num_labels: int) -> torch.nn.Module:
    """The base loaded with the head for `task` (new heads are initialised from torch's RNG)."""
    import transformers

    kwargs = _task_model_kwargs(task, num_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "lm":
            from transformers.models.auto.modeling_auto import (
                MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                MODEL_FOR_MASKED_LM_MAPPING_NAMES,
            )

            config = _from_pretrained(transformers.AutoConfig, base_dir)
            mt = config.model_type
            # Encoders such as BERT have an LM-head class, but next-token loss needs a decoder.
            encoder = mt in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)
            if mt not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder:
                raise FinetuneError(f"{base_dir}: task 'lm' needs a causal LM (decoder), not {mt}")
            model = _from_pretrained(transformers.AutoModelForCausalLM, base_dir, **kwargs)
        else:
            model = _from_pretrained(transformers.AutoModelForSequenceClassification, base_dir, **kwargs)
    if getattr(model.config, "pad_token_id", None) is None:
        # Sequence classification of decoder models needs a pad id to find the last token;
        # generated data never contains it, so any regular id works.
        model.config.pad_token_id = _TINY_PAD
    return model


def _from_pretrained(auto_cls, base_dir: Path, **kwargs):
    """`auto_cls.from_pretrained`, with a base transformers cannot load reported in one line."""
    from safetensors import SafetensorError

    try:
        return auto_cls.from_pretrained(base_dir, **kwargs)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FinetuneError(f"{base_dir}: transformers cannot load it as {auto_cls.__name__} ({first})") from None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the expected "newly initialised head" / "unused weights" load reports."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _train(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], lr: float) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise FinetuneError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    losses = []
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _block_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The stack of transformer blocks: the ModuleList holding the most parameters."""
    best: tuple[str, torch.nn.ModuleList] | None = None
    best_count = -1
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            count = sum(p.numel() for p in module.parameters())
            if count > best_count:
                best, best_count = (name, module), count
    if best is None:
        raise FinetuneError(f"{type(model).__name__}: no stack of transformer blocks found")
    return best


def frozen_parameter_names(model: torch.nn.Module, k: int) -> list[str]:
    """Names of the parameters frozen by `frozen_blocks=k`: blocks 0..k-1 and, for k > 0, the
    embeddings (every nn.Embedding and any module path with a component containing "embed")."""
    if k <= 0:
        return []
    stack_name, stack = _block_list(model)
    if k > len(stack):
        raise FinetuneError(f"frozen_blocks {k} exceeds the model's {len(stack)} blocks")
    frozen: set[str] = set()
    for i in range(k):
        frozen.update(f"{stack_name}.{i}.{n}" for n, _ in stack[i].named_parameters())
    for mod_name, module in model.named_modules():
        parts = mod_name.split(".")
        if isinstance(module, torch.nn.Embedding) or any("embed" in p for p in parts):
            frozen.update(f"{mod_name}.{n}" if mod_name else n for n, _ in module.named_parameters())
    names = {n for n, _ in model.named_parameters()}
    return sorted(frozen & names)


def _copy_tokenizer(base_dir: Path, out_dir: Path) -> None:
    for fname in TOKENIZER_FILES:
        src = base_dir / fname
        if src.is_file():
            shutil.copyfile(src, out_dir / fname)


# --------------------------------------------------------------------------- public API


def tiny_config(arch: str):
    """The transformers config of a tiny model of `arch` (4 blocks, hidden 64, vocab 1000)."""
    import transformers

    common = dict(vocab_size=1000, pad_token_id=_TINY_PAD, bos_token_id=_TINY_BOS, eos_token_id=_TINY_EOS)
    if arch == "gpt2":
        return transformers.GPT2Config(n_layer=4, n_embd=64, n_head=4, n_positions=128, **common)
    if arch == "llama":
        return transformers.LlamaConfig(
            num_hidden_layers=4,
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            **common,
        )
    if arch == "bert":
        return transformers.BertConfig(
            num_hidden_layers=4,
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            max_position_embeddings=128,
            vocab_size=1000,
            pad_token_id=_TINY_PAD,
        )
    raise FinetuneError(f"arch {arch!r} is not one of {', '.join(TINY_ARCHS)}")


def build_tiny_model(arch: str, out_dir: Path, seed: int) -> Path:
    """Save a tiny randomly initialised model (causal LM for gpt2/llama, BertModel for bert).

    Same arch and seed give bit-identical files. No tokenizer is written: data for these models
    is generated token ids.
    """
    import transformers

    config = tiny_config(arch)
    with _deterministic(seed), _atomic_dir(Path(out_dir)) as tmp:
        if arch == "bert":
            model = transformers.BertModel(config)
        else:
            model = transformers.AutoModelForCausalLM.from_config(config)
        model.eval()
        model.save_pretrained(tmp)
    return Path(out_dir)


def finetune(base_dir: Path, out_dir: Path, spec: FinetuneSpec) -> Path:
    """Fine-tune `base_dir` for a few real steps and save it in HF format at `out_dir`.

    `spec.frozen_blocks = k > 0` freezes the bottom k blocks and the embeddings; those tensors are
    saved bit-identical to the base's. The task head is new (initialised from the seed).
    """
    base_dir = _check_base(base_dir)
    _check_out(out_dir)
    _check_task(spec.task, spec.num_labels)
    if spec.frozen_blocks < 0 or spec.steps < 1 or spec.batch_size < 1:
        raise FinetuneError(f"{spec.name}: frozen_blocks, steps and batch_size must be >= 0, 1, 1")
    with _deterministic(spec.seed) as rng:
        model = _load_task_model(base_dir, spec.task, spec.num_labels)
        frozen = set(frozen_parameter_names(model, spec.frozen_blocks))
        for name, param in model.named_parameters():
            param.requires_grad_(name not in frozen)
        batches = _make_batches(
            rng,
            base_dir,
            model.config.vocab_size,
            spec.task,
            spec.num_labels,
            spec.steps,
            spec.batch_size,
            spec.seq_len,
        )
        _train(model, batches, spec.lr)
        with _atomic_dir(Path(out_dir)) as tmp:
            model.save_pretrained(tmp)
            _copy_tokenizer(base_dir, tmp)
    return Path(out_dir)


def _peft_config(spec: AdapterSpec, model_type: str):
    import peft
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING

    task_type = peft.TaskType.CAUSAL_LM if spec.task == "lm" else peft.TaskType.SEQ_CLS
    if spec.type == "lora":
        return peft.LoraConfig(
            r=spec.r,
            lora_alpha=spec.alpha,
            lora_dropout=0.0,
            target_modules=spec.target_modules,
            modules_to_save=spec.modules_to_save,
            task_type=task_type,
        )
    if spec.type == "ia3":
        feedforward = None
        if spec.target_modules is not None:
            # peft requires feedforward modules to be a subset of the targets
            defaults = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type, [])
            feedforward = [m for m in spec.target_modules if m in defaults]
        return peft.IA3Config(
            target_modules=spec.target_modules,
            feedforward_modules=feedforward,
            modules_to_save=spec.modules_to_save,
            task_type=task_type,
        )
    raise FinetuneError(f"{spec.name}: adapter type {spec.type!r} is not one of {', '.join(PEFT_TYPES)}")


def train_adapter(base_dir: Path, out_dir: Path, spec: AdapterSpec) -> Path:
    """Train a PEFT adapter on `base_dir` for a few steps; save adapter_config.json and
    adapter_model.safetensors at `out_dir` (base_model_name_or_path = str(base_dir)).

    For classification/regression the new head is saved in the adapter (peft adds it to
    `modules_to_save`), so loading needs only the base and the adapter.
    """
    import peft

    base_dir = _check_base(base_dir)
    _check_out(out_dir)
    _check_task(spec.task, spec.num_labels)
    if spec.type not in PEFT_TYPES:
        raise FinetuneError(f"{spec.name}: adapter type {spec.type!r} is not one of {', '.join(PEFT_TYPES)}")
    if spec.steps < 1:
        raise FinetuneError(f"{spec.name}: steps must be >= 1")
    with _deterministic(spec.seed) as rng:
        model = _load_task_model(base_dir, spec.task, spec.num_labels)
        config = _peft_config(spec, model.config.model_type)
        model.name_or_path = str(base_dir)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                peft_model = peft.get_peft_model(model, config)
        except ValueError as exc:  # e.g. target modules not found in the model
            raise FinetuneError(f"{spec.name}: peft rejected the adapter ({exc})") from None
        batches = _make_batches(
            rng,
            base_dir,
            model.config.vocab_size,
            spec.task,
            spec.num_labels,
            spec.steps,
            spec.batch_size,
            spec.seq_len,
        )
        _train(peft_model, batches, spec.lr)
        with _atomic_dir(Path(out_dir)) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model.save_pretrained(tmp)
            _sort_set_fields(tmp / "adapter_config.json")
    return Path(out_dir)


def _sort_set_fields(config_path: Path) -> None:
    """peft keeps target modules as Python sets and writes them in hash order, which varies
    between processes (PYTHONHASHSEED); sort them so the same seed gives the same bytes."""
    cfg = _read_json(config_path)
    for key in ("target_modules", "feedforward_modules", "exclude_modules"):
        if isinstance(cfg.get(key), list):
            cfg[key] = sorted(cfg[key])
    config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))  # peft's own format


def _adapter_head_labels(model_dir: Path) -> int | None:
    """Number of labels of the classification head saved in an adapter, if it has one."""
    from safetensors import safe_open

    path = model_dir / "adapter_model.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as fh:
        for key in fh.keys():
            if re.search(r"(^|\.)(score|classifier)(\.modules_to_save\.[^.]+)?\.weight$", key):
                return int(fh.get_slice(key).get_shape()[0])
    return None


def load_for_inference(model_dir: Path, base_dir: Path | None = None) -> torch.nn.Module:
    """Load a model directory in eval mode: transformers for full models (class from the
    config's `architectures`), transformers + peft on `base_dir` for an adapter (default: the
    adapter's `base_model_name_or_path`)."""
    import transformers

    model_dir = Path(model_dir)
    adapter_cfg = model_dir / "adapter_config.json"
    with warnings.catch_warnings(), _quiet_transformers():
        warnings.simplefilter("ignore")
        if adapter_cfg.is_file():
            import peft

            cfg = _read_json(adapter_cfg)
            base = Path(base_dir) if base_dir is not None else Path(cfg.get("base_model_name_or_path") or "")
            _check_base(base)
            task_type = cfg.get("task_type")
            if task_type == "SEQ_CLS":
                labels = _adapter_head_labels(model_dir) or 2
                model = _from_pretrained(transformers.AutoModelForSequenceClassification, base, num_labels=labels)
                if getattr(model.config, "pad_token_id", None) is None:
                    model.config.pad_token_id = _TINY_PAD  # as at training time
            elif task_type == "CAUSAL_LM":
                model = _from_pretrained(transformers.AutoModelForCausalLM, base)
            else:
                model = _from_pretrained(transformers.AutoModel, base)
            model = peft.PeftModel.from_pretrained(model, model_dir)
        else:
            config = _read_json(_check_base(model_dir) / "config.json")
            archs = config.get("architectures") or []
            cls = getattr(transformers, archs[0], None) if archs else None
            if cls is None:
                cls = transformers.AutoModel
            model = _from_pretrained(cls, model_dir)
    model.eval()
    return model
