"""A synthetic PB library: families of models sharing base PBs, for tests and quick experiments."""

from __future__ import annotations

import numpy as np

from pbkit.library.format import LibraryError, ModelEntry, PBEntry, PBLibrary


def synthetic_library(
    rng: np.random.Generator,
    families: int = 2,
    models_per_family: int = 6,
    base_pbs: int = 12,
    own_pbs: int = 4,
    shared_fraction: float = 0.7,
    mean_pb_bytes: float = 8e6,
    sigma: float = 0.5,
) -> PBLibrary:
    """A synthetic library for tests and sweeps, marked `synthetic: true`.

    Each family has a base of `base_pbs` PBs (log-normal sizes around `mean_pb_bytes`); each
    fine-tune keeps the first `round(shared_fraction * base_pbs)` base PBs frozen (shared) and
    replaces the rest with its own, plus `own_pbs` extra task-specific PBs.
    """
    if not 0.0 <= shared_fraction <= 1.0:
        raise LibraryError(f"shared_fraction {shared_fraction} is not in [0, 1]")
    pbs: list[PBEntry] = []
    models: list[ModelEntry] = []

    def new_pb(label: str) -> str:
        pb_id = f"syn-{len(pbs):05d}"
        size = int(max(1, rng.lognormal(np.log(mean_pb_bytes), sigma)))
        pbs.append(PBEntry(id=pb_id, bytes=size, label=label))
        return pb_id

    n_shared = int(round(shared_fraction * base_pbs))
    for f in range(families):
        base_ids = [new_pb(f"family{f}/base/block{b}") for b in range(base_pbs)]
        base_name = f"family{f}-base"
        models.append(ModelEntry(name=base_name, pbs=tuple(base_ids), kind="base"))
        for t in range(models_per_family):
            name = f"family{f}-task{t}"
            own = [new_pb(f"{name}/block{b}") for b in range(n_shared, base_pbs)]
            extra = [new_pb(f"{name}/head{e}") for e in range(own_pbs)]
            models.append(
                ModelEntry(
                    name=name,
                    pbs=tuple(base_ids[:n_shared] + own + extra),
                    kind="partial-finetune",
                    base=base_name,
                )
            )
    return PBLibrary(
        pbs=pbs,
        models=models,
        granularity="layer",
        source={
            "kind": "synthetic",
            "families": families,
            "models_per_family": models_per_family,
            "shared_fraction": shared_fraction,
        },
        synthetic=True,
    )
