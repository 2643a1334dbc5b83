"""Cost of creating files and directories soon after deletions, against a minute later
(docs/store-benchmarks.md, 2 Dec section: why bench_store.py no longer deletes a store just
before the next ingest).

    .venv/bin/python benchmarks/fs_create_cost.py [--dir DIR] [--sets 10] [--wait 65]

Three rounds: delete --sets store-like sets (118 files holding 92 MB in 85 subdirectories,
fsynced), then create 118 empty files and 85 directories (what a first ingest of the bundled
MiniLM creates) and time it. Then, after --wait seconds without deletions, the same creation once
more. Prints milliseconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def create_set(root: Path) -> tuple[float, float]:
    """(ms for 118 empty files, ms for 85 directories) created in root."""
    t = time.perf_counter()
    for i in range(118):
        os.close(os.open(root / f"f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    t1 = time.perf_counter()
    for i in range(85):
        os.mkdir(root / f"d{i:02x}")
    return (t1 - t) * 1e3, (time.perf_counter() - t1) * 1e3


def store_like(root: Path) -> None:
    for i in range(118):
        sub = root / f"{i % 85:02x}"
        sub.mkdir(parents=True, exist_ok=True)
        with open(sub / f"o{i}", "wb") as fh:
            fh.write(os.urandom(780_000))
            os.fsync(fh.fileno())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--sets", type=int, default=10, help="store-like sets deleted before each round")
    ap.add_argument("--wait", type=float, default=65.0)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fs-create-", dir=args.dir))
    try:
        for trial in range(3):
            for j in range(args.sets):
                old = work / f"old{trial}-{j}"
                store_like(old)
                shutil.rmtree(old)
            d = work / f"set{trial}"
            d.mkdir()
            files, dirs = create_set(d)
            print(
                f"after deleting {args.sets * (trial + 1):3d} sets: 118 files {files:6.1f} ms, 85 directories {dirs:6.1f} ms",
                flush=True,
            )
        print(f"waiting {args.wait:.0f} s with no deletion ...", flush=True)
        time.sleep(args.wait)
        d = work / "quiet"
        d.mkdir()
        files, dirs = create_set(d)
        print(f"after {args.wait:.0f} s without deletions: 118 files {files:6.1f} ms, 85 directories {dirs:6.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
