"""Seeds as users write them, the same grammar for every `--seeds` option.

`10` is a count (seeds `first`..`first`+9, `first` from `--first-seed`, default 0), `0-9` an
inclusive range, `0,3,5` a list. Seeds are non-negative integers: numpy's SeedSequence refuses
negative ones, so a negative seed is refused here, while the command line is read, in one line.
"""

from __future__ import annotations

import re

from pbkit.errors import PbkitError

SEEDS_GRAMMAR = "N (N seeds from the first), A-B (inclusive) or A,B,C"
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class SeedError(PbkitError, ValueError):
    """A seed or list of seeds that is not non-negative integers in the `--seeds` grammar."""


def check_seed(seed: int, what: str = "--seed") -> int:
    """`seed` if it is a non-negative integer. Raises SeedError naming `what`."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SeedError(f"{what} {seed!r}: not an integer seed")
    if seed < 0:
        raise SeedError(f"{what} {seed}: seeds are non-negative integers")
    return seed


def parse_seeds(text: str | int, option: str = "--seeds", first: int = 0) -> list[int]:
    """The seeds `text` names: `10` (a count from `first`), `0-9`, `0,3,5`.

    Raises:
        SeedError: naming `option` and the value, for anything else, a negative seed, an empty
            list, a count of 0 or a decreasing range.
    """
    check_seed(first, "--first-seed")
    raw = str(text).strip()
    bad = SeedError(f"{option} {str(text)!r}: not seeds ({SEEDS_GRAMMAR}; seeds are non-negative)")
    if raw.isdigit():
        count = int(raw)
        if count < 1:
            raise SeedError(f"{option} {raw}: a count of seeds must be at least 1")
        return list(range(first, first + count))
    match = _RANGE.match(raw)
    if match:
        lo, hi = int(match.group(1)), int(match.group(2))
        if hi < lo:
            raise SeedError(f"{option} {raw!r}: the range ends before it starts")
        return list(range(lo, hi + 1))
    if "," in raw:
        items = [s.strip() for s in raw.split(",")]
        if not all(s.isdigit() for s in items):
            raise bad
        return [int(s) for s in items]
    raise bad


def format_seeds(seeds: list[int]) -> str:
    """Seeds as the grammar writes them shortest: `0-9` for a run, else `0,3,5`."""
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


__all__ = ["SEEDS_GRAMMAR", "SeedError", "check_seed", "format_seeds", "parse_seeds"]
