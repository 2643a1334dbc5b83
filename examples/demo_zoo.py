"""Demo section 2: build the default zoo, export its PB library, print the dedup report.

    python examples/demo_zoo.py [WORKDIR]        (default .pbkit-demo)

Writes WORKDIR/zoo (model directories), WORKDIR/store (the PB store), WORKDIR/library.json
(layer granularity, the zoo's models only) and WORKDIR/report/ (report.json and two plots).
Rerunning reuses every model already built and ingested.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from rich.console import Console

from pbkit.library.export import export_library
from pbkit.store import Store
from pbkit.zoo.builder import ZooEvent, build_zoo
from pbkit.zoo.report import dedup_report, render_notes, render_table, write_report
from pbkit.zoo.scan import scan_zoo
from pbkit.zoo.spec import load_spec


def main(workdir: Path) -> None:
    workdir = Path(workdir)
    console = Console()
    spec = load_spec("default")

    def progress(ev: ZooEvent) -> None:
        if ev.phase == "done":
            console.print(f"  [{ev.index + 1:2d}/{ev.total}] {ev.model:<28} {ev.status:<9} {ev.seconds:5.1f} s")

    with Store.open(workdir / "store") as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = build_zoo(spec, workdir / "zoo", store, progress=progress)
        counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts().items()))
        console.print(f"zoo '{spec.name}': {len(result.models)} models ({counts}) in {result.seconds:.1f} s")
        # Only the zoo's models: the store may also hold models from other demo sections.
        lib = export_library(store, granularity="layer", models=[m.name for m in result.models])
    path = lib.save(workdir / "library.json")
    s = lib.sharing()
    console.print(
        f"{path}: {s['models']} models, {s['pbs']} PBs (layer), logical {s['logical_bytes'] / 1e6:,.1f} MB, "
        f"unique {s['unique_bytes'] / 1e6:,.1f} MB, {s['pbs_shared_by_2_or_more']} PBs shared by >= 2 models"
    )
    models, source = scan_zoo(workdir / "zoo")
    report = dedup_report(models, source, origin=f"zoo {workdir / 'zoo'}")
    written = write_report(report, workdir / "report")
    console.print(render_table(report))
    console.print(render_notes(report))
    console.print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".pbkit-demo").resolve())
