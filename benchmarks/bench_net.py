"""Speed targets of `pbkit pull` (issue 17), as ratios measured in one run on this machine:

1. `pbkit pull` of GPT-2 medium (randomly initialised, 1.42 GB of F32 safetensors, built from a
   transformers config and cached under --work) from a local `pbkit serve`, into an empty store,
   every block verified and fsynced, vs `curl` fetching the same block URLs (and the recipe) from
   the same server over the same loopback with the same number of connections, into files
   (not verified, not fsynced). Target: curl time / pull time >= 0.7. Runs alternate; the best
   of --repeats is compared, all runs are printed.
2. A pull of a partial fine-tune (2 of 292 tensors changed) and of a LoRA adapter (r=8 on every
   attention c_attn, made here) into a store that holds the base: bytes received (recipe + blocks
   + HTTP response headers) / bytes of the model's blocks the base does not share. Target <= 1.05.

    .venv/bin/python benchmarks/bench_net.py [--large gpt2|gpt2-medium] [--repeats 3] [--out FILE.json]

`--large gpt2` (GPT-2 small, 0.5 GB) is the fallback for a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from bench_store import LARGE_CONFIGS, build_large  # noqa: E402

from pbkit.common.fs import atomic_write_json  # noqa: E402
from pbkit.common.schema import versioned  # noqa: E402

LARGE_CONFIGS.setdefault("gpt2", dict(n_embd=768, n_layer=12, n_head=12))  # GPT-2 small, 0.5 GB in F32
WORKERS = 4
PULL_TARGET = 0.7
BYTES_TARGET = 1.05


def pbkit(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pbkit.cli", *args], env=env, check=True, text=True, **kw)


def start_server(store: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pbkit.cli", "--store", str(store), "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "serving ... on http://127.0.0.1:PORT ..."
    m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"serve did not start: {line!r}")
    return proc, m.group(1)


def make_finetune(base: Path, out: Path) -> Path:
    """Two tensors of the base changed (a partial fine-tune); everything else identical."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    if (out / "model.safetensors").is_file():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=".ft-", dir=out.parent))
    for f in base.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, tmp / f.name)
    sd = load_file(str(base / "model.safetensors"))
    rng = np.random.default_rng(0)
    for k in ("transformer.h.0.mlp.c_fc.weight", "transformer.h.1.mlp.c_fc.weight"):
        sd[k] = (sd[k] + 0.01 * rng.standard_normal(sd[k].shape)).astype(sd[k].dtype)
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    os.rename(tmp, out)
    return out


def make_lora(base: Path, out: Path, rank: int = 8) -> Path:
    """A LoRA adapter in PEFT's layout (adapter_config.json + adapter_model.safetensors) on every
    attention c_attn; A and B random (a trained adapter's B is not zero)."""
    import numpy as np
    from safetensors.numpy import save_file

    if (out / "adapter_model.safetensors").is_file():
        return out
    cfg = json.loads((base / "config.json").read_text())
    d, n = cfg["n_embd"], cfg["n_layer"]
    rng = np.random.default_rng(1)
    tensors = {}
    for i in range(n):
        p = f"base_model.model.transformer.h.{i}.attn.c_attn"
        tensors[f"{p}.lora_A.weight"] = rng.standard_normal((rank, d)).astype(np.float32)
        tensors[f"{p}.lora_B.weight"] = rng.standard_normal((3 * d, rank)).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": rank,
                "lora_alpha": 16,
                "target_modules": ["c_attn"],
                "base_model_name_or_path": "gpt2",
            }
        )
    )
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "pbkit-bench")
    ap.add_argument("--large", choices=["gpt2", "gpt2-medium"], default="gpt2-medium")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed: the reference of this benchmark")

    base = build_large(args.work, args.large)
    ft = make_finetune(base, args.work / f"{args.large}-ft2")
    lora = make_lora(base, args.work / f"{args.large}-lora8")
    scratch = Path(tempfile.mkdtemp(prefix="net-", dir=args.work))
    origin = scratch / "origin"
    name = args.large
    pbkit("--store", str(origin), "ingest", str(base), "--name", name, stdout=subprocess.DEVNULL)
    pbkit("--store", str(origin), "ingest", str(ft), "--name", f"{name}-ft", "--base", name, stdout=subprocess.DEVNULL)
    pbkit(
        "--store", str(origin), "ingest", str(lora), "--name", f"{name}-lora", "--base", name, stdout=subprocess.DEVNULL
    )
    from pbkit.store import Store

    with Store.open(origin, create=False) as s:
        recipe = s.recipe(name)
        block_ids = list(recipe.blocks())
        total = sum(b.nbytes for b in recipe.blocks().values())
        base_blocks = s.model_blocks(name)
        unshared = {m: s.need(m, base_blocks).needed_bytes for m in (f"{name}-ft", f"{name}-lora")}
    server, url = start_server(origin)
    runs: dict[str, list[float]] = {"pull": [], "curl": []}
    try:
        cfg = scratch / "curl.cfg"
        lines = [f'url = "{url}/v1/models/{name}/recipe"\noutput = "recipe.json"']
        lines += [f'url = "{url}/v1/blocks/{b}"\noutput = "{b}"' for b in block_ids]
        cfg.write_text("\n".join(lines) + "\n")
        for i in range(args.repeats):
            dest = scratch / f"curl-{i}"
            dest.mkdir()
            runs["curl"].append(
                timed(
                    lambda dest=dest: subprocess.run(
                        [
                            curl,
                            "-sS",
                            "--no-progress-meter",
                            "--fail",
                            "--parallel",
                            "--parallel-max",
                            str(WORKERS),
                            "-K",
                            str(cfg),
                        ],
                        cwd=dest,
                        check=True,
                    )
                )
            )
            got = sum(p.stat().st_size for p in dest.iterdir() if p.name != "recipe.json")
            assert got == total, (got, total)
            shutil.rmtree(dest)
            store = scratch / f"dev-{i}"
            runs["pull"].append(
                timed(
                    lambda store=store: pbkit(
                        "--store",
                        str(store),
                        "pull",
                        name,
                        "--from",
                        url,
                        "--workers",
                        str(WORKERS),
                        "--json",
                        stdout=subprocess.DEVNULL,
                    )
                )
            )
            if i < args.repeats - 1:
                shutil.rmtree(store)
            print(f"run {i}: curl {runs['curl'][-1]:.2f} s, pull {runs['pull'][-1]:.2f} s", flush=True)
        device = scratch / f"dev-{args.repeats - 1}"  # holds the base now
        pbkit("--store", str(device), "verify", stdout=subprocess.DEVNULL)
        partial = {}
        for m in (f"{name}-ft", f"{name}-lora"):
            out = pbkit("--store", str(device), "pull", m, "--from", url, "--json", capture_output=True).stdout
            r = json.loads(out)
            received = r["fetched_bytes"] + r["recipe_bytes"] + r["header_bytes"]
            partial[m] = {
                "unshared_bytes": unshared[m],
                "fetched_block_bytes": r["fetched_bytes"],
                "recipe_bytes": r["recipe_bytes"],
                "header_bytes": r["header_bytes"],
                "received_bytes": received,
                "ratio": received / unshared[m],
            }
        pbkit("--store", str(device), "verify", stdout=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)

    best_pull, best_curl = min(runs["pull"]), min(runs["curl"])
    ratio = best_curl / best_pull
    print(f"\n{name}: {total / 1e9:.2f} GB in {len(block_ids)} blocks, {WORKERS} connections")
    print(
        f"  pull (verified, fsynced): best {best_pull:.2f} s ({total / best_pull / 1e6:.0f} MB/s); runs {runs['pull']}"
    )
    print(
        f"  curl (same URLs):         best {best_curl:.2f} s ({total / best_curl / 1e6:.0f} MB/s); runs {runs['curl']}"
    )
    print(
        f"  pull speed / curl speed = {ratio:.2f} (target >= {PULL_TARGET}): {'PASS' if ratio >= PULL_TARGET else 'FAIL'}"
    )
    ok = ratio >= PULL_TARGET
    for m, d in partial.items():
        good = d["ratio"] <= BYTES_TARGET
        ok &= good
        print(
            f"  {m}: received {d['received_bytes']:,} B for {d['unshared_bytes']:,} B not shared with the base "
            f"(recipe {d['recipe_bytes']:,}, headers {d['header_bytes']:,}) = {d['ratio']:.4f} "
            f"(target <= {BYTES_TARGET}): {'PASS' if good else 'FAIL'}"
        )
    if args.out:
        from importlib.metadata import version

        report = {
            "command": " ".join([sys.executable, *sys.argv]),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average_at_end": os.getloadavg(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "versions": {p: version(p) for p in ("httpx", "starlette", "uvicorn", "blake3")},
            "model": name,
            "bytes": total,
            "blocks": len(block_ids),
            "workers": WORKERS,
            "runs_s": runs,
            "pull_vs_curl": ratio,
            "partial": partial,
        }
        atomic_write_json(args.out, versioned("bench.net", report), indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
