"""Each component's contribution, from a `pbkit learn report` results file: every variant minus
the reference learner (MAASN-DA), paired twice over.

- per training seed (n = training seeds): the variant and MAASN-DA trained on the same seed, each
  averaged over the held-out seeds, then differenced; the interval is over training seeds, so it
  carries the training noise (what the issue's "on the same seeds" asks for);
- per held-out seed (n = held-out seeds): the variants' means over training seeds, differenced
  per held-out seed (the scenario noise only).

A positive difference means the variant is slower: removing that component made it worse, so
the component helps. Several results files (reports run on the same held-out seeds and scenario,
e.g. a variant added later) are merged first; a policy both files ran must have given the same
delay on every seed, or the script refuses them.

    .venv/bin/python benchmarks/ablation_table.py RESULTS.json [MORE.json ...] [--reference maasn-da] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery.interval import Interval  # noqa: E402
from pbkit.common.schema import check_schema, versioned  # noqa: E402


def contributions(results: dict, reference: str) -> dict[str, dict]:
    """{variant: {"per_training_seed": Interval json, "per_heldout_seed": Interval json}}."""
    policies = results["policies"]
    seeds = sorted({name.split("/seed")[1] for name in policies if name.startswith(reference + "/seed")})
    variants = sorted({name.split("/seed")[0] for name in policies if "/seed" in name} - {reference})
    out = {}
    for variant in variants:
        per_train = [
            float(np.mean(policies[f"{variant}/seed{s}"]["per_seed"]))
            - float(np.mean(policies[f"{reference}/seed{s}"]["per_seed"]))
            for s in seeds
            if f"{variant}/seed{s}" in policies
        ]
        per_heldout = np.asarray(policies[variant]["per_seed"]) - np.asarray(policies[reference]["per_seed"])
        out[variant] = {
            "per_training_seed": Interval.from_samples(per_train).to_json(),
            "per_heldout_seed": Interval.from_samples(per_heldout).to_json(),
        }
    return out


def merge(documents: list[tuple[str, dict]]) -> dict:
    """One results document from several on the same seeds. Raises ValueError naming the file
    whose held-out seeds differ, or whose common policy gave other per-seed delays."""
    (first_name, first), rest = documents[0], documents[1:]
    merged = {"policies": dict(first["policies"]), "eval_seeds": first["eval_seeds"]}
    for name, doc in rest:
        if doc["eval_seeds"] != first["eval_seeds"]:
            raise ValueError(f"{name}: held-out seeds {doc['eval_seeds']} differ from {first_name}'s")
        for policy, row in doc["policies"].items():
            known = merged["policies"].get(policy)
            if known is not None and not np.allclose(known["per_seed"], row["per_seed"], rtol=0, atol=1e-9):
                raise ValueError(f"{name}: {policy} differs from {first_name}'s on the same seeds (another scenario?)")
            merged["policies"].setdefault(policy, row)
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+")
    ap.add_argument("--reference", default="maasn-da")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        results = merge(
            [(str(f), check_schema(json.loads(f.read_text()), "learn-report", str(f))) for f in args.results]
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = contributions(results, args.reference)
    if args.json:
        print(json.dumps(versioned("bench.ablation-table", {"reference": args.reference, "variants": table}), indent=1))
        return 0
    print(f"variant - {args.reference} (s), 95 % intervals; > 0: the variant is slower")
    for variant, row in table.items():
        a, b = Interval.from_json(row["per_training_seed"]), Interval.from_json(row["per_heldout_seed"])
        print(f"{variant:20s} per training seed {a.format('+.3f')}   per held-out seed {b.format('+.3f')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
