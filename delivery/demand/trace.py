"""Trace replay: the requests of every slot read from a CSV file `slot,user,model`.

The file names models by their library name. Every slot 0..T-1 must be present with exactly
one row per user 0..K-1; any other row (an unknown model, a user out of range, a slot missing
or given twice, a malformed line) is a TraceError naming the file and the row. The truth a
reference policy reads is the trace itself (the next slots' actual requests).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from delivery.demand.base import DemandProcess
from delivery.errors import ConfigError


class TraceError(ConfigError):
    """A request trace file is unreadable or malformed (one line naming the file and row)."""


def read_trace(path: str | Path, model_names: list[str], n_users: int) -> np.ndarray:
    """(T, K) model indices from a `slot,user,model` CSV (header line required).

    Raises TraceError on a missing or unreadable file, a wrong header, a malformed row, an
    unknown model, a user out of range, a (slot, user) given twice, or a missing slot or user.
    """
    path = Path(path)
    index = {name: i for i, name in enumerate(model_names)}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read the request trace ({exc.__class__.__name__})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != ["slot", "user", "model"]:
        raise TraceError(f"{path}: line 1: the header must be 'slot,user,model'")
    seen: dict[tuple[int, int], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            raise TraceError(f"{path}: line {line}: expected 3 fields slot,user,model, got {len(row)}")
        try:
            slot, user = int(row[0]), int(row[1])
        except ValueError:
            raise TraceError(
                f"{path}: line {line}: slot and user must be integers, got {row[0]!r}, {row[1]!r}"
            ) from None
        model = row[2].strip()
        if slot < 0:
            raise TraceError(f"{path}: line {line}: slot {slot} is negative")
        if not 0 <= user < n_users:
            raise TraceError(f"{path}: line {line}: user {user} is out of range 0..{n_users - 1}")
        if model not in index:
            raise TraceError(f"{path}: line {line}: unknown model {model!r}")
        if (slot, user) in seen:
            raise TraceError(f"{path}: line {line}: slot {slot} user {user} already given on line {seen[slot, user]}")
        seen[slot, user] = line
    if not seen:
        raise TraceError(f"{path}: the request trace has no rows")
    n_slots = max(s for s, _ in seen) + 1
    out = np.full((n_slots, n_users), -1, dtype=int)
    for row in rows[1:]:
        if row and any(c.strip() for c in row):
            out[int(row[0]), int(row[1])] = index[row[2].strip()]
    for s in range(n_slots):
        missing = np.nonzero(out[s] < 0)[0]
        if len(missing) == n_users:
            raise TraceError(f"{path}: slot {s} is missing (slots must run 0..{n_slots - 1})")
        if len(missing):
            raise TraceError(f"{path}: slot {s}: no row for user {int(missing[0])}")
    return out


def write_trace(path: str | Path, requests: np.ndarray, model_names: list[str]) -> None:
    """Write (T, K) model indices as a `slot,user,model` CSV (what `read_trace` reads)."""
    lines = ["slot,user,model"]
    for s, row in enumerate(np.asarray(requests)):
        lines.extend(f"{s},{u},{model_names[int(i)]}" for u, i in enumerate(row))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class TraceProcess(DemandProcess):
    table: np.ndarray  # (T, K) model index per slot and user
    n_models: int
    n_regions: int
    rng: np.random.Generator
    slot: int = field(init=False, default=0)

    def _row(self, strict: bool = False) -> np.ndarray:
        """The coming slot's row; past the end, the last row for a popularity (a reference
        policy looking one slot beyond the trace) and a TraceError for a draw."""
        if self.slot >= len(self.table):
            if strict:
                raise TraceError(f"the request trace has {len(self.table)} slots; slot {self.slot} was asked for")
            return self.table[-1]
        return self.table[self.slot]

    def user_popularity(self, user_home: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.table[0]), self.n_models))
        out[np.arange(out.shape[0]), self._row()] = 1.0
        return out

    def region_popularity(self) -> np.ndarray:
        # regions are the users' homes, which the trace does not know: network-wide shares
        share = np.bincount(self._row(), minlength=self.n_models) / len(self.table[0])
        return np.repeat(share[None, :], self.n_regions, axis=0)

    def draw(self, user_home: np.ndarray) -> np.ndarray:
        requests = self._row(strict=True).copy()
        self.slot += 1
        return requests
