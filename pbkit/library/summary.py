"""A library in numbers: models, unique and logical bytes, sharing-degree histogram (`library describe`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pbkit.library.format import PBLibrary


def describe(library: PBLibrary) -> dict[str, Any]:
    """Models, unique and logical bytes, the sharing-degree histogram and the largest PB.

    `sharing_histogram` maps a degree d (how many models need a PB) to the number of PBs and
    their bytes with that degree; `models` lists each model's kind, base, PB count and bytes.
    """
    member = library.membership()
    sizes = library.pb_sizes()
    degree = member.sum(axis=0)
    histogram = {
        int(d): {"pbs": int((degree == d).sum()), "bytes": int(sizes[degree == d].sum())} for d in np.unique(degree)
    }
    largest = int(np.argmax(sizes))
    model_bytes = library.model_bytes()
    return {
        **library.sharing(),
        "granularity": library.granularity,
        "synthetic": library.synthetic,
        "source": library.source,
        "sharing_histogram": histogram,
        "largest_pb": {
            "id": library.pbs[largest].id,
            "bytes": int(sizes[largest]),
            "label": library.pbs[largest].label,
            "models": int(degree[largest]),
        },
        "model_list": [
            {"name": m.name, "kind": m.kind, "base": m.base, "pbs": len(m.pbs), "bytes": int(b)}
            for m, b in zip(library.models, model_bytes)
        ],
    }


def describe_text(desc: dict[str, Any]) -> str:
    """`describe()` as plain-text tables: totals, sharing-degree histogram, models."""

    def gb(n: int) -> str:
        return f"{n / 1e9:,.3f} GB"

    lines = [
        f"{desc['models']} models, {desc['pbs']} PBs ({desc['granularity']}"
        f"{', synthetic' if desc['synthetic'] else ''}); logical {gb(desc['logical_bytes'])}, "
        f"unique {gb(desc['unique_bytes'])}, dedup x{desc['dedup_ratio']:.2f}",
        f"largest PB: {desc['largest_pb']['label'] or desc['largest_pb']['id'][:16]} "
        f"({gb(desc['largest_pb']['bytes'])}, needed by {desc['largest_pb']['models']} models)",
        "",
        f"{'models sharing a PB':>20} {'PBs':>7} {'bytes':>16}",
    ]
    for d, row in desc["sharing_histogram"].items():
        lines.append(f"{d:>20} {row['pbs']:>7} {gb(row['bytes']):>16}")
    width = max(len(m["name"]) for m in desc["model_list"])
    lines += ["", f"{'model':<{width}} {'kind':<17} {'PBs':>5} {'bytes':>16}  base"]
    for m in desc["model_list"]:
        lines.append(f"{m['name']:<{width}} {m['kind']:<17} {m['pbs']:>5} {gb(m['bytes']):>16}  {m['base'] or ''}")
    return "\n".join(lines)
