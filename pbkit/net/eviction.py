"""Eviction policies of an edge cache: which cached block goes first when a new one needs room.

These are the classic replacement rules for a byte-capacity cache of whole blocks. The
simulator's placement policies (`delivery.policies`: popular, lfu, greedy over a slot's
requests) decide a whole placement per slot from forecast demand; an edge node serving requests
one by one needs a replacement rule instead, and pbkit's core never imports `delivery`, so the
rules live here. `lfu` is in-cache LFU (counts since a block entered, ties to the least recently
used); `lru` evicts the least recently used.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Iterator, Protocol

POLICIES = ("lru", "lfu")


class EvictionPolicy(Protocol):
    def add(self, key: str) -> None: ...

    def touch(self, key: str) -> None: ...

    def remove(self, key: str) -> None: ...

    def victims(self) -> Iterator[str]:  # cached keys, the first to evict first
        ...


class LRU:
    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        self._order[key] = None
        self._order.move_to_end(key)

    def touch(self, key: str) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def remove(self, key: str) -> None:
        self._order.pop(key, None)

    def victims(self) -> Iterator[str]:
        return iter(list(self._order))


class LFU:
    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._clock = itertools.count()

    def add(self, key: str) -> None:
        self._count[key] = 1
        self._last[key] = next(self._clock)

    def touch(self, key: str) -> None:
        if key in self._count:
            self._count[key] += 1
            self._last[key] = next(self._clock)

    def remove(self, key: str) -> None:
        self._count.pop(key, None)
        self._last.pop(key, None)

    def victims(self) -> Iterator[str]:
        return iter(sorted(self._count, key=lambda k: (self._count[k], self._last[k])))


def make_policy(name: str) -> EvictionPolicy:
    """The policy called `name` (one of POLICIES); ValueError otherwise."""
    if name == "lru":
        return LRU()
    if name == "lfu":
        return LFU()
    raise ValueError(f"--policy {name!r} is not one of {', '.join(POLICIES)}")
