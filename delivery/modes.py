"""Delivery modes: the three choices a mode makes, answered in one place.

Every place that behaves differently by mode (storage accounting, unit building, hit ratios,
projections, policies) asks one of these predicates instead of comparing mode names:

- `stores_models(mode)`: storage accounting. True: a cache holds whole models, each cached model
  its own copy, so a PB shared by two cached models is paid twice and only PBs of complete models
  serve (delivery/storage.py). False: every cached PB is stored once (PB-deduplicated).
- `sends_models(mode)`: the delivery unit. True: one transmission per requested model, so a PB
  shared by two requested models goes out once per model; EN n sends model i only if it holds
  every PB of i. False: one transmission per PB, broadcast to every user whose model needs it.
- `cooperative(mode)`: CoMP over the full band with EN-to-EN migration; False is noncoop (each EN
  serves its own users on its own 1/N of the band, PB units, no migration).

fine and coarse differ in both of the first two; `coarse-storage` and `coarse-delivery` change one
each, so coarse - fine splits into a storage part, a delivery part and their interaction
(docs/system-model.md, "Modes").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    whole_model_storage: bool
    whole_model_delivery: bool
    cooperative: bool
    summary: str


_MODES = (
    Mode("fine", False, False, True, "PB-deduplicated storage, one broadcast per PB"),
    Mode("coarse", True, True, True, "whole-model storage, one unit per requested model"),
    Mode("coarse-storage", True, False, True, "whole-model storage, one broadcast per PB"),
    Mode("coarse-delivery", False, True, True, "PB-deduplicated storage, one unit per requested model"),
    Mode("noncoop", False, False, False, "each EN alone on 1/N of the band, PB units, no migration"),
)
BY_NAME = {m.name: m for m in _MODES}
MODES = tuple(BY_NAME)


def mode_of(name: str) -> Mode:
    """The Mode called `name`. Raises ValueError for an unknown name."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"mode {name!r} is not one of {', '.join(MODES)}") from None


def stores_models(mode: str) -> bool:
    """Storage accounting: whole models, each its own copy (True), or PBs stored once (False)."""
    return mode_of(mode).whole_model_storage


def sends_models(mode: str) -> bool:
    """Delivery unit: one per requested model (True) or one broadcast per PB (False)."""
    return mode_of(mode).whole_model_delivery


def places_models(mode: str) -> bool:
    """Whether placements are built from whole models: a partial model serves nothing when
    storage holds whole models or delivery sends them, so policies fill by model then."""
    return stores_models(mode) or sends_models(mode)


def cooperative(mode: str) -> bool:
    """CoMP over the full band and EN-to-EN migration (every mode but noncoop)."""
    return mode_of(mode).cooperative
