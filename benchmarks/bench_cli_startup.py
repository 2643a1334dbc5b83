"""Start-up time of the `pbkit` command against `python -c "import typer, rich"` in the same run.

Target (issue 11): `pbkit --help` and `pbkit --store S ls` in at most 0.3 s on an idle machine.
Each round runs the reference and every command once, in an order shuffled by the seed, so the
ratios are paired (same round, same machine load); we report the median of each and the mean
per-round ratio with a 95 % t-interval over rounds.

    .venv/bin/python benchmarks/bench_cli_startup.py [--rounds 20] [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from delivery.interval import Interval
from pbkit.common.fs import atomic_write_json
from pbkit.common.schema import SCHEMA_KEY, schema_id

TARGET_S = 0.3


def _pbkit() -> list[str]:
    script = Path(sys.executable).with_name("pbkit")
    if script.exists():
        return [str(script)]  # the console script a user runs
    return [sys.executable, "-c", "import sys; from pbkit.cli import main; sys.exit(main())"]


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="pbkit-bench-startup-") as tmp:
        store = Path(tmp) / "store"
        from pbkit.store import Store

        Store.open(store, create=True).close()
        cases = {
            "reference: import typer, rich": [sys.executable, "-c", "import typer, rich"],
            # What typer >= 0.2x itself adds to any command that has options: its pydantic-based
            # value coercion (typer._adapters). Informative: pbkit cannot avoid it while on typer.
            "typer floor: + typer._adapters": [sys.executable, "-c", "import typer, rich, typer._adapters"],
            "pbkit --help": [*_pbkit(), "--help"],
            "pbkit --store S ls": [*_pbkit(), "--store", str(store), "ls"],
        }
        for argv_ in cases.values():  # warm the page cache and .pyc files
            _time(argv_)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for i in rng.permutation(len(cases)):
                name = list(cases)[i]
                times[name].append(_time(cases[name]))

    ref = times["reference: import typer, rich"]
    rows = {}
    print(f"{'command':<32}{'median s':>10}{'mean s ± 95 %':>20}{'ratio to ref ± 95 %':>24}{'target':>10}")
    for name, values in times.items():
        took = Interval.from_samples(values)
        ratio = Interval.from_samples([v / r for v, r in zip(values, ref)])
        median = statistics.median(values)
        rows[name] = {
            "median_s": median,
            "time_s": took.to_json(),
            "ratio_to_reference": ratio.to_json(),
            "times_s": values,
        }
        target = "" if not name.startswith("pbkit") else ("met" if median <= TARGET_S else "MISSED")
        print(f"{name:<32}{median:>10.3f}{took.format('.3f'):>20}{ratio.format('.2f'):>24}{target:>10}")
    result = {
        SCHEMA_KEY: schema_id("bench.cli-startup"),
        "rounds": args.rounds,
        "seed": args.seed,
        "target_s": TARGET_S,
        "python": sys.version.split()[0],
        "cases": rows,
    }
    if args.out:
        atomic_write_json(args.out, result, indent=1)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
