"""What delta blocks change for caching (issue 19, section 3): the demo zoo exported twice - from
a store with exact PBs only and from one where fine-tunes are stored with delta blocks against
their base - and `pbkit sim compare` run on both with the same explicit cache size (a fraction
of the exact library's unique bytes), the same seeds and policies (fine-grained greedy and LFU,
and coarse whole-model caching).

    .venv/bin/python benchmarks/delta_caching.py --seeds 5 --slots 20 --out .bench-cache/delta-caching

The zoo is built with the project's zoo builder under --work if absent (as bench_delta.py). A
delta PB's demand includes its reference (docs/library-format.md), so a delta-stored full
fine-tune costs its deltas plus the base's PBs it refers to: deltas pay off when the base is
cached or requested anyway. Prints one table (mean delay with its 95 % interval per library and
policy) and writes DIR/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_delta import build_zoo_models  # noqa: E402

from delivery.interval import Interval  # noqa: E402
from pbkit.common.fs import atomic_write_json  # noqa: E402
from pbkit.common.schema import SCHEMA_KEY, check_schema, schema_id  # noqa: E402
from pbkit.library import load_library  # noqa: E402
from pbkit.library.export import export_library  # noqa: E402
from pbkit.store import Store  # noqa: E402
from pbkit.store.references import DeltaPolicy  # noqa: E402


def delta_store(zoo: Path, path: Path) -> Path:
    """Every zoo model ingested in the zoo's order, with its zoo base and delta blocks."""
    manifest = json.loads((zoo / "zoo.json").read_text())["models"]
    with Store.open(path) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for m in manifest:
            store.ingest(zoo / m["name"], name=m["name"], base=m["base"], delta=DeltaPolicy())
    return path


def exact_store(zoo: Path, path: Path) -> Path:
    manifest = json.loads((zoo / "zoo.json").read_text())["models"]
    with Store.open(path) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for m in manifest:
            store.ingest(zoo / m["name"], name=m["name"], base=m["base"])
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / ".bench-cache")
    ap.add_argument("--out", type=Path, default=REPO / ".bench-cache" / "delta-caching")
    ap.add_argument("--granularity", default="layer")
    ap.add_argument("--policies", default="greedy,lfu,coarse")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--slots", type=int, default=20)
    ap.add_argument("--cache-fraction", type=float, default=0.3, help="of the exact library's unique bytes")
    ap.add_argument("--summary", type=Path, help="print the paired table of an earlier run's summary.json and stop")
    args = ap.parse_args(argv)
    if args.summary is not None:
        print_paired(json.loads(args.summary.read_text()), str(args.summary))
        return 0
    zoo = build_zoo_models(args.work)
    args.out.mkdir(parents=True, exist_ok=True)
    libs = {}
    for kind, build in (("exact", exact_store), ("delta", delta_store)):
        store_dir = args.work / f"caching-store-{kind}"
        if not (store_dir / "pbkit-store.json").is_file():
            build(zoo, store_dir)
        with Store.open(store_dir, create=False) as store:
            lib = export_library(store, granularity=args.granularity)
        libs[kind] = lib.save(args.out / f"library-{kind}.json")
    exact_unique = load_library(libs["exact"]).sharing()["unique_bytes"]
    cache = int(args.cache_fraction * exact_unique)
    summary: dict = {
        SCHEMA_KEY: schema_id("bench.delta-caching"),
        "cache_bytes": cache,
        "granularity": args.granularity,
        "seeds": args.seeds,
        "slots": args.slots,
    }
    for kind, path in libs.items():
        s = load_library(path).sharing()
        summary[f"library_{kind}"] = {k: s[k] for k in s if k != "models"}
        out = args.out / f"compare-{kind}"
        cmd = [sys.executable, "-m", "pbkit.cli", "sim", "compare", "--library", str(path), "--policies", args.policies]
        cmd += ["--seeds", str(args.seeds), "--slots", str(args.slots), "--set", f"cache_bytes={cache}"]
        cmd += ["--out", str(out), "--json"]
        print("$", " ".join(cmd[1:]), flush=True)
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
        summary[f"compare_{kind}"] = json.loads(res.stdout)
    atomic_write_json(args.out / "summary.json", summary, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if not k.startswith("compare_")}, indent=1))
    for kind in libs:
        print(f"--- {kind}")
        print(json.dumps(summary[f"compare_{kind}"], indent=1)[:3000])
    print_paired(summary, str(args.out / "summary.json"))
    return 0


def print_paired(summary: dict, where: str) -> None:
    """Per policy: mean delay on both libraries and the paired (same seeds) delta - exact interval.
    Raises SchemaError naming `where` for a summary of another kind or version."""
    from delivery.experiment import paired_difference  # the one paired-interval rule

    check_schema(summary, "bench.delta-caching", where)
    for kind in ("exact", "delta"):
        check_schema(summary[f"compare_{kind}"], "sim-compare", f"{where}: compare_{kind}")
    exact = summary["compare_exact"]["policies"]
    delta = summary["compare_delta"]["policies"]
    print(f"scenario: {summary['compare_exact']['scenario']}, {summary['seeds']} seeds x {summary['slots']} slots")
    for name in exact:
        a, b = exact[name]["per_seed_mean_delay_s"], delta[name]["per_seed_mean_delay_s"]
        d = Interval.from_json(paired_difference(b, a))
        print(
            f"{name:8s} exact {sum(a) / len(a):.3f} s  delta {sum(b) / len(b):.3f} s  "
            f"delta - exact {d.mean:+.3f} s {d.format_range('+.3f')}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
