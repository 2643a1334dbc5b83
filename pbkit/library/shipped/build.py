"""Build the shipped libraries (`make libraries`): `python -m pbkit.library.shipped.build [NAME ...] [--check]`.

Planning is deterministic (ids are digests of names, dtypes and shapes), so a rebuild gives the
same bytes; `--check` rebuilds in memory and fails if a shipped file differs from its spec.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pbkit.library import PBLibrary
from pbkit.library.shipped import SHIPPED, ShippedLibrary

SPECS_DIR = Path(__file__).resolve().parent.parent / "plans" / "specs"


def build(lib: ShippedLibrary) -> PBLibrary:
    """Plan the library from its spec. Raises PlanError on a bad spec."""
    from pbkit.library.plan import plan_spec

    library = plan_spec(SPECS_DIR / lib.spec).to_library(lib.granularity)
    # The source names the spec relative to the package, not this machine's checkout path.
    library.source["spec"] = f"pbkit/library/plans/specs/{lib.spec}"
    library.source["shipped_name"] = lib.name
    return library


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"libraries to build (default: all of {', '.join(SHIPPED)})")
    parser.add_argument("--check", action="store_true", help="compare with the shipped files, write nothing")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SHIPPED]
    if unknown:
        print(f"pbkit: error: {unknown[0]}: not a shipped library ({', '.join(SHIPPED)})", file=sys.stderr)
        return 2
    stale = []
    for name in args.names or list(SHIPPED):
        lib = SHIPPED[name]
        library = build(lib)
        if args.check:
            on_disk = json.loads(lib.path.read_text()) if lib.path.exists() else None
            if on_disk != json.loads(json.dumps(library.to_dict())):
                stale.append(name)
            continue
        library.save(lib.path)
        share = library.sharing()
        print(f"{lib.path}: {share['models']} models, {share['pbs']} PBs, unique {share['unique_bytes']:,} B")
    if stale:
        print(
            f"pbkit: error: {', '.join(stale)}: shipped library differs from its spec (run make libraries)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
