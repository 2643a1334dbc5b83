"""The dedup report: the same files measured under five storage schemes side by side.

Schemes (definitions and where each wins: docs/dedup-report.md):
- logical: every file of every model, as a plain copy would store them.
- file: whole-file dedup, files keyed by SHA-256 (what a plain content-addressed store does).
- tensor: pbkit's PBs: one block per tensor keyed by (dtype, shape, bytes), plus each
  safetensors header and each other file as a whole-file block (what `pbkit ingest` stores).
- cdc: byte-level content-defined chunks (FastCDC, 64 KiB target, 8 KiB min, 128 KiB max, the
  parameters of Hugging Face's Xet storage) keyed by BLAKE3, each file chunked on its own.
- canonical: the tensor scheme where a floating tensor that is bit-exactly the cast of a wider
  floating tensor of the same shape somewhere in the set (e.g. an fp16/bf16 release of fp32
  weights) is not stored but derived by casting (`torch.Tensor.to`, round-to-nearest-even).
- delta: the tensor scheme where a tensor of a fine-tune that differs from the tensor of the
  same name, dtype and shape in its family's base is stored as a lossless delta block against
  it when that saves at least 10 % (what `pbkit ingest --delta` stores; docs/delta-blocks.md).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import blake3
import numpy as np

from pbkit.model.digest import pb_id
from pbkit.model.dtypes import DTYPE_SIZES, FLOAT_CODES, ST_TO_TORCH
from pbkit.zoo.scan import ByteSource, ScannedModel

# Xet's chunker: 64 KiB target, 8 KiB minimum, 128 KiB maximum (anchors.md; xet-core).
CDC_AVG = 64 * 1024
CDC_MIN = 8 * 1024
CDC_MAX = 128 * 1024

# Floating dtypes a tensor can be canonicalised across, by safetensors name, with width in bytes.
FLOAT_WIDTH = {code: DTYPE_SIZES[code] for code in FLOAT_CODES}
SCHEMES = ("logical", "file", "tensor", "cdc", "canonical", "delta")
SCHEME_TITLES = {
    "logical": "logical (no dedup)",
    "file": "whole-file (SHA-256)",
    "tensor": "tensor PBs (pbkit)",
    "cdc": "64 KiB CDC (FastCDC, Xet-like)",
    "canonical": "tensor PBs + dtype canonicalisation",
    "delta": "tensor PBs + deltas vs the base (--delta)",
}


@dataclass
class SchemeResult:
    scheme: str
    unique_bytes: int
    blocks: int  # distinct stored units (files, blocks, chunks)
    logical_bytes: int

    @property
    def saved_fraction(self) -> float:
        return 1.0 - self.unique_bytes / self.logical_bytes if self.logical_bytes else 0.0

    @property
    def ratio(self) -> float:
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "title": SCHEME_TITLES[self.scheme],
            "unique_bytes": self.unique_bytes,
            "blocks": self.blocks,
            "saved_fraction": round(self.saved_fraction, 6),
            "dedup_ratio": round(self.ratio, 6),
        }


@dataclass
class ModelRow:
    """Per model: its bytes, and how many of its (tensor-scheme) block bytes other models share."""

    name: str
    family: str
    role: str
    logical_bytes: int
    block_bytes: int  # distinct blocks of this model
    shared_bytes: int  # of those, bytes in blocks that at least one other model also uses
    own_bytes: int
    tensors: int
    shared_tensors: int


@dataclass
class DedupReport:
    source: str
    models: list[ModelRow]
    schemes: dict[str, SchemeResult]
    cdc: dict[str, Any]
    canonical: dict[str, Any]
    membership: np.ndarray = field(repr=False)  # (models, blocks) bool, tensor scheme
    block_bytes: np.ndarray = field(repr=False)  # (blocks,) int64
    block_kinds: list[str] = field(repr=False, default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "pbkit-dedup-report",
            "version": 1,
            "source": self.source,
            "logical_bytes": self.schemes["logical"].logical_bytes,
            "schemes": {k: v.to_dict() for k, v in self.schemes.items()},
            "cdc": self.cdc,
            "canonical": self.canonical,
            "models": [asdict(m) for m in self.models],
        }


# ---------------------------------------------------------------- the schemes
def _cdc(
    models: Sequence[ScannedModel], source: ByteSource, avg: int, min_size: int, max_size: int
) -> tuple[int, int, int, dict[str, Any]]:
    """(unique bytes, distinct chunks, total chunks, details) of FastCDC over every file."""
    from pyfastcdc import FastCDC

    # normalized_chunking=1 and seed 0 are pyfastcdc's defaults (fastcdc-rs's NC level 1).
    chunker = FastCDC(avg, min_size=min_size, max_size=max_size)
    seen: dict[bytes, int] = {}
    total = 0
    lengths: list[int] = []
    for m in models:
        for f in m.files:
            if f.size == 0:
                continue
            with source.open_file(m.name, f.path) as fh:
                for chunk in chunker.cut_stream(fh):
                    key = blake3.blake3(chunk.data).digest()
                    total += 1
                    if key not in seen:
                        seen[key] = chunk.length
                        lengths.append(chunk.length)
    unique = sum(seen.values())
    arr = np.array(lengths or [0], dtype=np.int64)
    details = {
        "avg_size": avg,
        "min_size": min_size,
        "max_size": max_size,
        "normalized_chunking": 1,
        "chunks": total,
        "unique_chunks": len(seen),
        "mean_unique_chunk_bytes": float(arr.mean()),
        "median_unique_chunk_bytes": float(np.median(arr)),
    }
    return unique, len(seen), total, details


def _torch_dtype(code: str) -> Any:
    import torch

    return getattr(torch, ST_TO_TORCH[code])


def recoverable_by_cast(tensors: dict[str, tuple[str, tuple[int, ...], int]], source: ByteSource) -> dict[str, str]:
    """Narrow tensors that are bit-exact casts of a wider tensor of the same shape.

    `tensors` maps each distinct PB id to (dtype, shape, nbytes). Returns {narrow pb: wide pb}.
    For each shape, every wider floating tensor is cast to each narrower floating dtype present
    at that shape, and the cast's PB id is looked up among the distinct PBs: the id binds dtype,
    shape and bytes, so a hit is an exact match.
    """
    import torch

    by_shape: dict[tuple[int, ...], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pid, (dtype, shape, _) in tensors.items():
        if dtype in FLOAT_WIDTH:
            by_shape[shape][dtype].append(pid)
    found: dict[str, str] = {}
    for shape, per_dtype in by_shape.items():
        if len(per_dtype) < 2:
            continue
        for wide_dtype, wide_ids in per_dtype.items():
            targets = [d for d in per_dtype if FLOAT_WIDTH[d] < FLOAT_WIDTH[wide_dtype]]
            if not targets:
                continue
            for wid in wide_ids:
                raw = bytearray(source.tensor_bytes(wid))
                wide = (
                    torch.frombuffer(raw, dtype=_torch_dtype(wide_dtype))
                    if raw
                    else torch.empty(0, dtype=_torch_dtype(wide_dtype))
                )
                for d in targets:
                    cast = wide.to(_torch_dtype(d)).contiguous()
                    cid = pb_id(d, shape, cast.view(torch.uint8).numpy().tobytes())
                    if cid in tensors and tensors[cid][0] == d:
                        found.setdefault(cid, wid)
    return found


def delta_savings(models: Sequence[ScannedModel], source: ByteSource, min_saving: float = 0.10) -> dict[str, Any]:
    """Bytes saved by storing fine-tunes' tensors as delta blocks against their family's base
    (the model of role "base"), found by tensor name, dtype and shape as at ingest; each
    distinct tensor PB counted once."""
    from pbkit.store import delta as _delta
    from pbkit.store.references import name_keys

    bases = {m.family: m for m in models if m.role == "base"}
    seen: set[str] = set()
    saved = count = tensor_bytes = 0
    for m in models:
        base = bases.get(m.family)
        if base is None or base is m:
            continue
        table: dict[str, Any] = {}
        base_pbs = set()
        for f in base.files:
            for t in f.tensors:
                base_pbs.add(t.pb)
                for k in name_keys(t.name):
                    table.setdefault(k, t)
        for f in m.files:
            for t in f.tensors:
                if t.pb in seen or t.pb in base_pbs or not _delta.supports(t.dtype):
                    continue
                seen.add(t.pb)
                ref = next((table[k] for k in name_keys(t.name) if k in table), None)
                if ref is None or ref.dtype != t.dtype or ref.shape != t.shape:
                    continue
                block = _delta.encode(source.tensor_bytes(t.pb), source.tensor_bytes(ref.pb), t.dtype)
                if block is not None and len(block) <= (1 - min_saving) * t.nbytes:
                    saved += t.nbytes - len(block)
                    tensor_bytes += t.nbytes
                    count += 1
    return {"tensors": count, "tensor_bytes": tensor_bytes, "saved_bytes": saved, "min_saving": min_saving}


def dedup_report(
    models: Sequence[ScannedModel],
    source: ByteSource,
    origin: str = "",
    cdc_avg: int = CDC_AVG,
    cdc_min: int = CDC_MIN,
    cdc_max: int = CDC_MAX,
) -> DedupReport:
    """Measure the schemes over `models` (see the module docstring for the definitions)."""
    logical = sum(m.logical_bytes for m in models)

    files: dict[str, int] = {}
    blocks: dict[str, tuple[int, str]] = {}  # block id -> (bytes, kind) for the tensor scheme
    tensors: dict[str, tuple[str, tuple[int, ...], int]] = {}
    model_blocks: list[dict[str, int]] = []
    for m in models:
        mine: dict[str, int] = {}
        for f in m.files:
            files.setdefault(f.sha256, f.size)
            if f.header_id is not None:
                blocks.setdefault(f.header_id, (f.header_bytes, "header"))
                mine[f.header_id] = f.header_bytes
                for t in f.tensors:
                    blocks.setdefault(t.pb, (t.nbytes, "tensor"))
                    tensors.setdefault(t.pb, (t.dtype, t.shape, t.nbytes))
                    mine[t.pb] = t.nbytes
            else:
                assert f.blob_id is not None
                blocks.setdefault(f.blob_id, (f.size, "file"))
                mine[f.blob_id] = f.size
        model_blocks.append(mine)

    tensor_unique = sum(b for b, _ in blocks.values())
    cdc_unique, cdc_blocks, _, cdc_details = _cdc(models, source, cdc_avg, cdc_min, cdc_max)
    recoverable = recoverable_by_cast(tensors, source)
    rec_bytes = sum(tensors[p][2] for p in recoverable)
    by_pair: dict[str, int] = defaultdict(int)
    for narrow, wide in recoverable.items():
        by_pair[f"{tensors[wide][0]}->{tensors[narrow][0]}"] += tensors[narrow][2]

    schemes = {
        "logical": SchemeResult("logical", logical, sum(len(m.files) for m in models), logical),
        "file": SchemeResult("file", sum(files.values()), len(files), logical),
        "tensor": SchemeResult("tensor", tensor_unique, len(blocks), logical),
        "cdc": SchemeResult("cdc", cdc_unique, cdc_blocks, logical),
        "canonical": SchemeResult("canonical", tensor_unique - rec_bytes, len(blocks) - len(recoverable), logical),
    }
    deltas = delta_savings(models, source)
    schemes["delta"] = SchemeResult("delta", tensor_unique - deltas["saved_bytes"], len(blocks), logical)
    canonical = {
        "recoverable_tensors": len(recoverable),
        "recoverable_bytes": rec_bytes,
        "share_of_tensor_unique": rec_bytes / tensor_unique if tensor_unique else 0.0,
        "by_cast": dict(sorted(by_pair.items())),
    }

    # Membership over the tensor scheme's blocks, in first-use order.
    order = list(blocks)
    col = {b: j for j, b in enumerate(order)}
    member = np.zeros((len(models), len(order)), dtype=bool)
    for i, mine in enumerate(model_blocks):
        member[i, [col[b] for b in mine]] = True
    sizes = np.array([blocks[b][0] for b in order], dtype=np.int64)
    users = member.sum(axis=0)
    rows = []
    for i, (m, mine) in enumerate(zip(models, model_blocks)):
        shared = int(sizes[member[i] & (users > 1)].sum())
        own_total = int(sizes[member[i]].sum())
        tensor_ids = [b for b in mine if blocks[b][1] == "tensor"]
        rows.append(
            ModelRow(
                name=m.name,
                family=m.family,
                role=m.role,
                logical_bytes=m.logical_bytes,
                block_bytes=own_total,
                shared_bytes=shared,
                own_bytes=own_total - shared,
                tensors=len(tensor_ids),
                shared_tensors=sum(1 for b in tensor_ids if users[col[b]] > 1),
            )
        )
    return DedupReport(
        source=origin,
        models=rows,
        schemes=schemes,
        cdc=cdc_details,
        canonical=canonical,
        membership=member,
        block_bytes=sizes,
        block_kinds=[blocks[b][1] for b in order],
    )


# ---------------------------------------------------------------- output
def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f} MB"


def render_table(report: DedupReport) -> Any:
    """A rich Table of the schemes (one row each)."""
    from rich.table import Table

    table = Table(title=f"Dedup report: {len(report.models)} models, {report.source}")
    table.add_column("scheme")
    table.add_column("stored", justify="right")
    table.add_column("saved", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("units", justify="right")
    for key in SCHEMES:
        s = report.schemes[key]
        table.add_row(
            SCHEME_TITLES[key],
            _mb(s.unique_bytes),
            f"{100 * s.saved_fraction:.1f} %",
            f"{s.ratio:.2f}x",
            f"{s.blocks:,}",
        )
    return table


def render_notes(report: DedupReport) -> str:
    """Two lines under the table: what canonicalisation recovered, how CDC cut."""
    c, k = report.canonical, report.cdc
    casts = ", ".join(f"{pair} {_mb(b)}" for pair, b in c["by_cast"].items()) or "none"
    return (
        f"dtype canonicalisation: {c['recoverable_tensors']} tensors recoverable by a cast ({casts}), "
        f"{100 * c['share_of_tensor_unique']:.1f} % of the tensor PB bytes\n"
        f"CDC: {k['chunks']:,} chunks cut, {k['unique_chunks']:,} distinct, mean distinct chunk "
        f"{k['mean_unique_chunk_bytes'] / 1024:.1f} KiB (avg {k['avg_size'] // 1024} / min {k['min_size'] // 1024} / max {k['max_size'] // 1024} KiB)"
    )


def render_models_table(report: DedupReport) -> Any:
    from rich.table import Table

    table = Table(title="Per model (tensor PBs; MB, shared = in PBs another model also uses)")
    table.add_column("model", no_wrap=True, min_width=22)
    table.add_column("role", no_wrap=True)
    for col in ("MB", "shared", "own", "tensors shared"):
        table.add_column(col, justify="right")
    for m in report.models:
        mb = [f"{b / 1e6:,.2f}" for b in (m.block_bytes, m.shared_bytes, m.own_bytes)]
        role = {"partial-finetune": "partial-ft", "full-finetune": "full-ft"}.get(m.role, m.role)
        table.add_row(m.name, role, *mb, f"{m.shared_tensors}/{m.tensors}")
    return table


def plot_report(report: DedupReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Two PNGs: the models x PBs sharing heatmap and the stacked shared/own bytes per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in report.models]
    member = report.membership
    users = member.sum(axis=0)
    # Columns: PBs used by more models first, then by size; cell 1 = own PB, 2 = shared PB.
    order = np.lexsort((-report.block_bytes, -users))
    cells = member[:, order].astype(np.int8) * np.where(users[order] > 1, 2, 1)[None, :]
    height = max(3.0, 0.28 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(12, height))
    ax.imshow(
        cells,
        aspect="auto",
        interpolation="nearest",
        cmap=ListedColormap(["#ffffff", "#f4a261", "#264653"]),
        vmin=0,
        vmax=2,
    )
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel(f"PBs (tensor blocks, headers, files): {member.shape[1]:,}, most-shared first")
    ax.set_title("Which model uses which PB (dark: shared by >= 2 models, light: own)")
    fig.tight_layout()
    heat = out / "sharing_heatmap.png"
    fig.savefig(heat, dpi=120)
    plt.close(fig)

    shared = np.array([m.shared_bytes for m in report.models]) / 1e6
    own = np.array([m.own_bytes for m in report.models]) / 1e6
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 0.35 * len(names) + 2), 8), sharex=True)
    x = np.arange(len(names))
    ax1.bar(x, shared, color="#264653", label="in PBs shared with another model")
    ax1.bar(x, own, bottom=shared, color="#f4a261", label="in PBs of this model only")
    ax1.set_ylabel("MB")
    ax1.legend(fontsize=8)
    ax1.set_title("Bytes per model: shared vs own (tensor PBs)")
    total = shared + own
    frac = np.divide(shared, total, out=np.zeros_like(shared), where=total > 0)
    ax2.bar(x, frac, color="#264653")
    ax2.bar(x, 1 - frac, bottom=frac, color="#f4a261")
    ax2.set_ylabel("share of the model's bytes")
    ax2.set_xticks(x, names, rotation=75, ha="right", fontsize=7)
    fig.tight_layout()
    bars = out / "bytes_per_model.png"
    fig.savefig(bars, dpi=120)
    plt.close(fig)
    return [heat, bars]


def write_report(report: DedupReport, out_dir: str | os.PathLike[str], plots: bool = True) -> list[Path]:
    """report.json (+ the plots) into `out_dir`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return [path] + (plot_report(report, out) if plots else [])
