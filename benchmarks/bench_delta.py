"""Delta blocks side by side with the field's compressors, on the same files (issue 19, section 2).

For every fine-tune (its base already stored), on warm page cache, best of --repeats runs,
every method run round-robin within one repeat so all see the same load:

    pbkit exact          ingest into a store holding the base, exact PBs only (new bytes written)
    pbkit exact+delta    the same with delta blocks (pbkit ingest --delta, default 10 % threshold)
    zstd                 every file compressed alone with zstd level 3 (zstandard), no base
    ZipNN                every safetensors file with ZipNN (byte grouping + Huffman/zstd), no base
    hf_xet               chunk dedup + compression against the base: the model uploaded after its
                         base into a local CAS (`local://` endpoint, offline); stored = xorb growth

and the assembly of the model from each pbkit store (durable: fsync, verified) against `cp -r`
of its directory (no fsync), as bench_store.py measures assembly. Targets (issue 19), summed
over the zoo's full fine-tunes:

    stored bytes, exact+delta / exact                          <= 0.6
    ingest throughput, exact+delta / exact                      >= 0.5
    assembly throughput of the delta-stored model / cp -r       >= 0.4

Models: the demo zoo (pbkit/zoo/specs/default.yaml, built with the project's zoo builder into
WORK/zoo if absent, about a minute) - its full fine-tunes and partial fine-tunes against their
family base - and, with --family gpt2 (default), a larger locally built family: GPT-2 small
(124 M parameters, randomly initialised from transformers' GPT2Config, seed 0; no network),
two full fine-tunes of it trained --steps AdamW steps (lr 5e-5, batch 2 x 64 random tokens,
seeds 1 and 2), and BF16 copies of the base and of the first fine-tune (the BF16 fine-tune is
stored against the BF16 base). Usage:

    .venv/bin/python benchmarks/bench_delta.py --out bench-delta.json --markdown bench-delta.md
    .venv/bin/python benchmarks/bench_delta.py --family none --repeats 3     # zoo only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pbkit.common.schema import versioned  # noqa: E402
from pbkit.store import Store  # noqa: E402
from pbkit.store.references import DeltaPolicy  # noqa: E402

ZOO_FULL = ["minilm-sst2-full", "tinygpt2-lm-full", "tinyllama-lm-full"]
ZOO_PARTIAL = [
    "minilm-agnews-k1",
    "minilm-mnli-k2",
    "minilm-qqp-k3",
    "minilm-stsb-k4",
    "tinygpt2-lm-k2",
    "tinyllama-lm-k2",
]
ZOO_BASE = {"minilm": "minilm-base", "tinygpt2": "tinygpt2-base", "tinyllama": "tinyllama-base"}
METHODS = ["exact", "delta", "zstd", "zipnn", "xet"]


@dataclass
class Case:
    """One fine-tune and its base: directories and names."""

    group: str  # "zoo-full" | "zoo-partial" | "gpt2"
    name: str
    path: Path
    base: str
    base_path: Path


@dataclass
class Row:
    group: str
    name: str
    base: str
    logical_bytes: int
    stored: dict[str, int] = field(default_factory=dict)  # method -> stored bytes
    ingest_s: dict[str, float] = field(default_factory=dict)  # method -> best seconds (compress / upload)
    restore_s: dict[str, float] = field(default_factory=dict)  # exact, delta, cp, zstd, zipnn -> best seconds
    notes: list[str] = field(default_factory=list)


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in files_of(root))


def warm(root: Path) -> None:
    for p in files_of(root):
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------- building the models
def build_zoo_models(work: Path) -> Path:
    zoo = work / "zoo"
    if (zoo / "zoo.json").is_file() and all((zoo / m).is_dir() for m in ZOO_FULL + ZOO_PARTIAL):
        return zoo
    from pbkit.zoo.builder import build_zoo
    from pbkit.zoo.spec import load_spec

    print(f"building the demo zoo under {zoo} (the project's zoo builder) ...", flush=True)
    with Store.open(work / "zoo-store") as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        build_zoo(load_spec("default"), zoo, store)
    return zoo


def build_gpt2_family(work: Path, steps: int) -> dict[str, Path]:
    """GPT-2 small (random init) + two fine-tunes + BF16 copies, cached under work/gpt2-family."""
    root = work / "gpt2-family"
    names = ["gpt2-base", "gpt2-ft1", "gpt2-ft2", "gpt2-base-bf16", "gpt2-ft1-bf16"]
    done = root / f"complete-steps{steps}"
    if done.is_file():
        return {n: root / n for n in names}
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(2)
    print(f"building the GPT-2 small family under {root} ({steps} AdamW steps per fine-tune) ...", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    torch.manual_seed(0)
    base = GPT2LMHeadModel(GPT2Config())  # GPT-2 small: 12 layers, 768 wide, 124 M parameters
    base.save_pretrained(root / "gpt2-base", safe_serialization=True)
    for i, name in ((1, "gpt2-ft1"), (2, "gpt2-ft2")):
        model = GPT2LMHeadModel.from_pretrained(root / "gpt2-base")
        model.train()
        g = torch.Generator().manual_seed(i)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
        for _ in range(steps):
            ids = torch.randint(0, model.config.vocab_size, (2, 64), generator=g)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.save_pretrained(root / name, safe_serialization=True)
        if i == 1:
            model.to(torch.bfloat16).save_pretrained(root / "gpt2-ft1-bf16", safe_serialization=True)
        del model, opt
    base.to(torch.bfloat16).save_pretrained(root / "gpt2-base-bf16", safe_serialization=True)
    done.write_text("ok\n")
    return {n: root / n for n in names}


# ---------------------------------------------------------------- the methods
def zstd_files(files: list[Path]) -> tuple[int, list[bytes]]:
    import zstandard

    c = zstandard.ZstdCompressor(level=3)
    out = [c.compress(p.read_bytes()) for p in files]
    return sum(map(len, out)), out


def zstd_restore(blobs: list[bytes], dest: Path) -> None:
    import zstandard

    d = zstandard.ZstdDecompressor()
    dest.mkdir(parents=True)
    for i, b in enumerate(blobs):
        with open(dest / f"f{i}", "wb") as f:
            f.write(d.decompress(b))


def _zipnn_dtype(path: Path) -> str | None:
    """ZipNN's element type for a safetensors file: the dtype of most of its bytes."""
    if path.suffix != ".safetensors":
        return None
    from pbkit.model.safetensors_layout import read_layout

    by: dict[str, int] = {}
    for t in read_layout(path).tensors:
        by[t.dtype] = by.get(t.dtype, 0) + t.nbytes
    top = max(by, key=by.get) if by else None
    return {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}.get(top or "")


def zipnn_files(files: list[Path]) -> tuple[int, list[tuple[str | None, bytes]]]:
    import zipnn
    import zstandard

    out = []
    for p in files:
        dtype = _zipnn_dtype(p)
        data = p.read_bytes()
        if dtype is None:  # configs, tokenizers: plain zstd, as ZipNN's own tools leave them
            out.append((None, zstandard.ZstdCompressor(level=3).compress(data)))
        else:
            out.append((dtype, zipnn.ZipNN(bytearray_dtype=dtype, input_format="byte").compress(data)))
    return sum(len(b) for _, b in out), out


def zipnn_restore(blobs: list[tuple[str | None, bytes]], dest: Path) -> None:
    import zipnn
    import zstandard

    dest.mkdir(parents=True)
    for i, (dtype, b) in enumerate(blobs):
        data = (
            zstandard.ZstdDecompressor().decompress(b)
            if dtype is None
            else zipnn.ZipNN(bytearray_dtype=dtype, input_format="byte").decompress(b)
        )
        with open(dest / f"f{i}", "wb") as f:
            f.write(data)


def xorb_bytes(cas: Path) -> int:
    d = cas / "xet" / "xorbs" / "xorbs"
    return (
        sum(p.stat().st_size for p in d.glob("*") if p.is_file() and not p.name.endswith(".tagset"))
        if d.is_dir()
        else 0
    )


def xet_upload(files: list[Path], cas: Path) -> None:
    import hf_xet

    hf_xet.upload_files([str(p) for p in files], f"local://{cas}", None, None, None, "model", skip_sha256=True)


# ---------------------------------------------------------------- one case
def run_case(case: Case, scratch: Path, repeats: int, check: bool) -> Row:
    files = files_of(case.path)
    row = Row(case.group, case.name, case.base, dir_bytes(case.path))
    policy = DeltaPolicy()
    stores: dict[str, Store] = {}
    for method in ("exact", "delta"):
        s = Store.open(scratch / f"store-{method}")
        if s.index.model(case.base) is None:
            s.ingest(case.base_path, name=case.base)
        stores[method] = s
    warm(case.path)
    warm(case.base_path)
    best: dict[str, float] = {}
    rbest: dict[str, float] = {}

    def note(d: dict[str, float], k: str, t: float) -> None:
        d[k] = min(d.get(k, float("inf")), t)

    try:
        for _ in range(repeats):
            for method in ("exact", "delta"):
                s = stores[method]
                if s.index.model(case.name) is not None:
                    s.remove(case.name)
                    s.gc()
                pol = policy if method == "delta" else None
                t, r = timed(lambda s=s, pol=pol: s.ingest(case.path, name=case.name, base=case.base, delta=pol))
                note(best, method, t)
                row.stored[method] = r.new_bytes
            t, (n, zblobs) = timed(lambda: zstd_files(files))
            note(best, "zstd", t)
            row.stored["zstd"] = n
            try:
                t, (n, nblobs) = timed(lambda: zipnn_files(files))
                note(best, "zipnn", t)
                row.stored["zipnn"] = n
            except ImportError:
                nblobs = None
                row.notes.append("zipnn not installed")
            cas = scratch / "xet-cas"
            shutil.rmtree(cas, ignore_errors=True)
            try:
                xet_upload(files_of(case.base_path), cas)
                before = xorb_bytes(cas)
                t, _ = timed(lambda cas=cas: xet_upload(files, cas))
                note(best, "xet", t)
                row.stored["xet"] = xorb_bytes(cas) - before
            except Exception as exc:  # noqa: BLE001 - an optional baseline: record why it did not run
                row.notes.append(f"hf_xet: {exc.__class__.__name__}: {exc}"[:200])
            shutil.rmtree(cas, ignore_errors=True)
            # restores, round-robin: cp -r, assembly from each store, decompression
            out = scratch / "out"
            jobs: list[tuple[str, Callable[[], Any]]] = [
                ("cp", lambda out=out: subprocess.run(["cp", "-r", str(case.path), str(out)], check=True)),
                ("exact", lambda out=out: stores["exact"].assemble(case.name, out)),
                ("delta", lambda out=out: stores["delta"].assemble(case.name, out)),
                ("zstd", lambda out=out, z=zblobs: zstd_restore(z, out)),
            ]
            if nblobs is not None:
                jobs.append(("zipnn", lambda out=out, z=nblobs: zipnn_restore(z, out)))
            for key, job in jobs:
                shutil.rmtree(out, ignore_errors=True)
                t, _ = timed(job)
                note(rbest, key, t)
                if check and key == "delta":
                    from pbkit.store.assemble import AssemblyError

                    if _sha_tree(out) != _sha_tree(case.path):
                        raise AssemblyError(f"{case.name}: delta assembly is not bit-exact")
            shutil.rmtree(out, ignore_errors=True)
    finally:
        for s in stores.values():
            s.close()
    row.ingest_s, row.restore_s = best, rbest
    return row


def _sha_tree(root: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files_of(root)}


# ---------------------------------------------------------------- report
def summarise(rows: list[Row], group: str) -> dict[str, Any]:
    sel = [r for r in rows if r.group == group]
    if not sel:
        return {}
    logical = sum(r.logical_bytes for r in sel)
    out: dict[str, Any] = {"models": [r.name for r in sel], "logical_bytes": logical}
    for m in METHODS:
        if all(m in r.stored for r in sel):
            out[f"stored_{m}"] = sum(r.stored[m] for r in sel)
        if all(m in r.ingest_s for r in sel):
            out[f"ingest_MBps_{m}"] = logical / sum(r.ingest_s[m] for r in sel) / 1e6
    for k in ("cp", "exact", "delta", "zstd", "zipnn"):
        if all(k in r.restore_s for r in sel):
            out[f"restore_MBps_{k}"] = logical / sum(r.restore_s[k] for r in sel) / 1e6
    if "stored_delta" in out and out.get("stored_exact"):
        out["ratio_stored_delta_vs_exact"] = out["stored_delta"] / out["stored_exact"]
        out["ratio_ingest_delta_vs_exact"] = out["ingest_MBps_delta"] / out["ingest_MBps_exact"]
        out["ratio_assembly_delta_vs_cp"] = out["restore_MBps_delta"] / out["restore_MBps_cp"]
        out["ratio_assembly_exact_vs_cp"] = out["restore_MBps_exact"] / out["restore_MBps_cp"]
    return out


def to_markdown(report: dict[str, Any]) -> str:
    mb = 1e6
    lines = [
        f"Run: {report['when']}, {report['machine']}, repeats {report['repeats']}, command `{report['command']}`",
        "",
        "Stored bytes (MB; the model's new bytes given its base; zstd and ZipNN compress the model alone):",
        "",
        "| group | model | base | size | pbkit exact | pbkit exact+delta | zstd -3 | ZipNN | hf_xet (vs base) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        st = r["stored"]

        def cell(m: str, r: dict = r, st: dict = st) -> str:
            return f"{st[m] / mb:,.1f} ({st[m] / r['logical_bytes']:.2f}x)" if m in st else "n/a"

        lines.append(
            f"| {r['group']} | {r['name']} | {r['base']} | {r['logical_bytes'] / mb:,.1f} | "
            + " | ".join(cell(m) for m in METHODS)
            + " |"
        )
    lines += [
        "",
        "Throughput (MB/s of model bytes, best of the repeats; ingest = ingest, compression or upload; "
        "restore = durable verified assembly, `cp -r`, decompression):",
        "",
        "| group | model | ingest exact | ingest delta | zstd | ZipNN | hf_xet | cp -r | assemble exact | "
        "assemble delta | unzstd | ZipNN dec. |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        b = r["logical_bytes"] / mb

        def tp(d: dict, k: str, b: float = b) -> str:
            return f"{b / d[k]:,.0f}" if k in d else "n/a"

        lines.append(
            f"| {r['group']} | {r['name']} | "
            + " | ".join(tp(r["ingest_s"], m) for m in METHODS)
            + " | "
            + " | ".join(tp(r["restore_s"], k) for k in ("cp", "exact", "delta", "zstd", "zipnn"))
            + " |"
        )
    lines += ["", "Summed over each group (the targets are on zoo-full):", ""]
    lines += [
        "| group | stored delta/exact | ingest delta/exact | assembly delta/cp | assembly exact/cp |",
        "|---|---:|---:|---:|---:|",
    ]
    for g, s in report["summary"].items():
        if s and "ratio_stored_delta_vs_exact" in s:
            lines.append(
                f"| {g} | {s['ratio_stored_delta_vs_exact']:.3f} | {s['ratio_ingest_delta_vs_exact']:.2f} | "
                f"{s['ratio_assembly_delta_vs_cp']:.2f} | {s['ratio_assembly_exact_vs_cp']:.2f} |"
            )
    notes = [f"{r['name']}: {n}" for r in report["rows"] for n in r["notes"]]
    if notes:
        lines += ["", "Notes: " + "; ".join(sorted(set(notes)))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / ".bench-cache", help="where models are built and cached")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--family", choices=["gpt2", "none"], default="gpt2")
    ap.add_argument("--steps", type=int, default=3, help="AdamW steps per GPT-2 fine-tune")
    ap.add_argument("--no-check", action="store_true", help="skip the SHA-256 check of each delta assembly")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    zoo = build_zoo_models(args.work)
    cases = []
    for group, names in (("zoo-full", ZOO_FULL), ("zoo-partial", ZOO_PARTIAL)):
        for n in names:
            base = ZOO_BASE[n.split("-")[0]]
            cases.append(Case(group, n, zoo / n, base, zoo / base))
    if args.family == "gpt2":
        fam = build_gpt2_family(args.work, args.steps)
        for n, b in (("gpt2-ft1", "gpt2-base"), ("gpt2-ft2", "gpt2-base"), ("gpt2-ft1-bf16", "gpt2-base-bf16")):
            cases.append(Case("gpt2", n, fam[n], b, fam[b]))
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-delta-", dir=args.work))
    try:
        for case in cases:
            t0 = time.perf_counter()
            row = run_case(case, scratch, args.repeats, check=not args.no_check)
            rows.append(row)
            st = row.stored
            print(
                f"{case.name:<20} {row.logical_bytes / 1e6:8.1f} MB  exact {st['exact'] / 1e6:7.1f}  "
                f"delta {st['delta'] / 1e6:7.1f}  zstd {st['zstd'] / 1e6:7.1f}  zipnn {st.get('zipnn', 0) / 1e6:7.1f}  "
                f"xet {st.get('xet', 0) / 1e6:7.1f}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "repeats": args.repeats,
        "command": "benchmarks/bench_delta.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": [r.__dict__ for r in rows],
        "summary": {g: summarise(rows, g) for g in ("zoo-full", "zoo-partial", "gpt2")},
    }
    md = to_markdown(report)
    print(md)
    if args.out:
        args.out.write_text(json.dumps(versioned("bench.delta", report), indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(md)
    s = report["summary"]["zoo-full"]
    ok = s["ratio_stored_delta_vs_exact"] <= 0.6 and s["ratio_ingest_delta_vs_exact"] >= 0.5
    ok = ok and s["ratio_assembly_delta_vs_cp"] >= 0.4
    print("targets on zoo-full:", "met" if ok else "NOT all met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
