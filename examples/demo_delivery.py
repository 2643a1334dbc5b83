"""Delivery demo: compare the caching baselines on the zoo's PB library (or a synthetic one).

    .venv/bin/python examples/demo_delivery.py [WORKDIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from pbkit.cli import main as pbkit_main


def main(workdir: Path) -> None:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    library = workdir / "library.json"
    spec = str(library) if library.exists() else "synthetic"
    print(f"delivery demo: policy comparison on {spec}")
    code = pbkit_main([
        "sim", "compare", "--library", spec,
        "--policies", "random,popular,lfu,coarse,noncoop,greedy",
        "--seeds", "3", "--slots", "8", "--out", str(workdir / "sim-compare"),
    ])
    if code != 0:
        raise SystemExit(code)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".pbkit-demo"))
