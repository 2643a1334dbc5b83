"""How many bytes a placement occupies at each EN, by the mode's storage accounting.

PB-deduplicated (fine, coarse-delivery, noncoop): every cached PB is stored once, whatever the
number of models using it. Whole-model (coarse, coarse-storage; `delivery.modes.stores_models`):
caches hold whole models; a model counts as cached at EN n when all its PBs are in n's placement
row, and each cached model is stored as its own copy, so a PB shared by two cached models is
paid twice. PBs that complete no model still occupy their bytes (once) and serve nothing
(`serving_placement`).
"""

from __future__ import annotations

import numpy as np

from delivery.modes import places_models, stores_models


def complete_models(placement: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """(N, I) bool: model i has every one of its PBs in EN n's placement row."""
    missing = (~placement).astype(np.int64) @ membership.T.astype(np.int64)
    return missing == 0


def serving_placement(placement: np.ndarray, membership: np.ndarray, mode: str) -> np.ndarray:
    """(N, J) bool: the PBs each EN can send from its cache. Under whole-model storage only the
    PBs of models complete at the EN (a stray PB is paid for and serves nothing); otherwise
    every placed PB."""
    placement = np.asarray(placement, dtype=bool)
    if not stores_models(mode):
        return placement
    complete = complete_models(placement, membership)
    return placement & ((complete.astype(np.int64) @ membership.astype(np.int64)) > 0)


def storage_bytes(placement: np.ndarray, membership: np.ndarray, pb_bytes: np.ndarray, mode: str) -> np.ndarray:
    """(N,) bytes used at each EN under the mode's accounting."""
    placement = np.asarray(placement, dtype=bool)
    if not stores_models(mode):
        return placement.astype(np.int64) @ pb_bytes
    complete = complete_models(placement, membership)
    model_bytes = membership.astype(np.int64) @ pb_bytes
    covered = (complete.astype(np.int64) @ membership.astype(np.int64)) > 0
    stray = placement & ~covered
    return complete.astype(np.int64) @ model_bytes + stray.astype(np.int64) @ pb_bytes


def fill_in_order(order: np.ndarray, sizes: np.ndarray, capacity: int) -> np.ndarray:
    """(len(sizes),) bool: take items in the given order, skipping any that no longer fit
    (first-fit greedy).

    Vectorised as repeated prefix fills, with the item-by-item loop's result (tested): drop what
    no longer fits, admit the longest prefix whose sizes sum within the space left, repeat. Space
    only shrinks, so an item dropped once never fits later; the learner fills thousands of PBs per
    EN and slot through here."""
    sizes = np.asarray(sizes)
    chosen = np.zeros(len(sizes), dtype=bool)
    rest, left = np.asarray(order, dtype=np.int64), int(capacity)
    while rest.size:
        rest = rest[sizes[rest] <= left]
        if not rest.size:
            break
        total = np.cumsum(sizes[rest])
        k = int(np.searchsorted(total, left, side="right"))  # >= 1: rest[0] fits
        chosen[rest[:k]] = True
        left -= int(total[k - 1])
        rest = rest[k + 1 :]  # rest[k] did not fit after the prefix
    return chosen


def fill_models(
    order: np.ndarray, membership: np.ndarray, pb_bytes: np.ndarray, capacity: int, mode: str
) -> np.ndarray:
    """Whole models in the given order, skipping any that no longer fit under the mode's
    accounting (a model's own copy, or only its PBs not yet held); returns the (J,) PB row."""
    row = np.zeros(membership.shape[1], dtype=bool)
    for i in order:
        trial = row | membership[i]
        if storage_bytes(trial[None, :], membership, pb_bytes, mode)[0] <= capacity:
            row = trial
    return row


def project_scores(
    scores: np.ndarray, pb_bytes: np.ndarray, capacity: np.ndarray, membership: np.ndarray, mode: str
) -> np.ndarray:
    """Feasible placement from (N, J) scores: only positive scores, greedy by score per byte.

    Where placements are built from whole models (`delivery.modes.places_models`) the unit is
    a whole model, scored by the sum of its PBs' scores per model byte and filled under the
    mode's accounting.
    """
    n_nodes, n_pbs = scores.shape
    out = np.zeros((n_nodes, n_pbs), dtype=bool)
    per_byte = scores / np.maximum(pb_bytes, 1)
    model_bytes = membership.astype(np.int64) @ pb_bytes
    for n in range(n_nodes):
        if places_models(mode):
            model_score = membership.astype(float) @ scores[n]
            density = model_score / np.maximum(model_bytes, 1)
            order = [i for i in np.argsort(-density, kind="stable") if model_score[i] > 0]
            out[n] = fill_models(np.array(order, dtype=int), membership, pb_bytes, int(capacity[n]), mode)
        else:
            order = [j for j in np.argsort(-per_byte[n], kind="stable") if scores[n, j] > 0]
            out[n] = fill_in_order(np.array(order, dtype=int), pb_bytes, int(capacity[n]))
    return out
