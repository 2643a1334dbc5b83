"""`make demo`: the main job on the bundled base model, end to end.

1. store    - ingest the bundled all-MiniLM-L6-v2, dedup table, bit-exact assembly with equal outputs
2. zoo      - build the default zoo of real fine-tunes and adapters (reused when already built),
              export the PB library, print the dedup report
3. delivery - compare the caching policies on the zoo's library in the CoMP simulator
   network  - a device pulls an adapter through an edge node (`pbkit serve`, `pbkit pull`) and runs it
4. learning - quick MAASN-DA training run and a table of policies

Everything goes under .pbkit-demo/ (or the directory given as the first argument); rerunning reuses
what is already built.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

SECTIONS = ("demo_store", "demo_zoo", "demo_delivery", "demo_network", "demo_learning")


def load_section(name: str):
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    workdir = Path(argv[0] if argv else ".pbkit-demo").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in SECTIONS:
        print(f"\n=== {name.removeprefix('demo_')} " + "=" * 60, flush=True)
        started = time.perf_counter()
        load_section(name).main(workdir)
        print(f"--- {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
