"""Which delta transform (issue 19: "measure and choose"): stored fraction and encoding time of
candidate lossless transforms of a full fine-tune's F32 tensors against its base's, on the demo
zoo's minilm-sst2-full (built by bench_delta.py's zoo step if absent).

    .venv/bin/python benchmarks/delta_codec_variants.py [--work .bench-cache]

Variants: XOR then zstd of the raw XOR; XOR then byte planes, each zstd-compressed; the same
with the sign bit rotated next to the mantissa (so one plane is exactly the exponent); byte
planes of the fine-tune alone (no reference, what ZipNN-style coders exploit); zstd levels 1, 3.
Times are single-threaded, best of 3, and include the XOR and plane split.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import zstandard

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_delta import build_zoo_models  # noqa: E402

from pbkit.store.references import name_keys  # noqa: E402


def pairs(zoo: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from safetensors.numpy import load_file

    base = load_file(str(zoo / "minilm-base" / "model.safetensors"))
    ft = load_file(str(zoo / "minilm-sst2-full" / "model.safetensors"))
    out = []
    for k, v in ft.items():
        ref = next((base[n] for n in name_keys(k) if n in base), None)
        if ref is not None and ref.shape == v.shape and v.dtype == np.float32:
            out.append((v.view(np.uint32).ravel(), ref.view(np.uint32).ravel()))
    return out


def stored(variant: str, level: int, data: list[tuple[np.ndarray, np.ndarray]]) -> int:
    c = zstandard.ZstdCompressor(level=level)
    n = 0
    for a, b in data:
        x = a if variant == "planes, no reference" else a ^ b
        if variant == "xor, planes, sign rotated":
            x = (x << np.uint32(1)) | (x >> np.uint32(31))
        if variant == "xor, raw":
            n += len(c.compress(x.tobytes()))
        else:
            planes = np.ascontiguousarray(x.view(np.uint8).reshape(-1, 4).T)
            n += sum(len(c.compress(planes[k])) for k in range(4))
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / ".bench-cache")
    args = ap.parse_args(argv)
    data = pairs(build_zoo_models(args.work))
    total = sum(a.nbytes for a, _ in data)
    print(f"{len(data)} F32 tensors, {total / 1e6:.1f} MB differing from the base\n")
    print("| transform | zstd level | stored / tensor bytes | seconds (1 thread) |")
    print("|---|---:|---:|---:|")
    for variant in ("xor, raw", "xor, planes", "xor, planes, sign rotated", "planes, no reference"):
        for level in (1, 3):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                n = stored(variant, level, data)
                times.append(time.perf_counter() - t0)
            print(f"| {variant} | {level} | {n / total:.3f} | {min(times):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
