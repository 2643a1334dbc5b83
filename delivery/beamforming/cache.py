"""BeamformerCache: an LRU of designs keyed by a quantised channel hash, plus the compiled problems.

The simulator owns one and passes it to `design(..., cache=...)`. Channels that agree after
relative quantisation (default 6 significant decimals of the largest entry) share a design; on
a hit the stored beamformer is re-evaluated on the caller's exact channels, so the returned
SNRs are exact for the channels given, never those of the cached neighbour.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .sdp import ProblemStore


@dataclass
class BeamformerCache:
    maxsize: int = 4096
    decimals: int = 6  # relative quantisation of the channels in the key
    hits: int = 0
    misses: int = 0
    problems: ProblemStore = field(default_factory=ProblemStore)
    _store: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def key(self, h: np.ndarray, power: np.ndarray, noise: float, method: str, eps: float) -> bytes:
        # Power-of-two reference scale: nearby channels share it, so they quantise alike.
        peak = float(np.max(np.abs(h)))
        exponent = int(np.floor(np.log2(peak))) if peak > 0 else 0
        q = np.round(h / 2.0**exponent * 10.0**self.decimals)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((method, float(eps), float(noise), h.shape, exponent)).encode())
        digest.update(np.ascontiguousarray(q.real).tobytes())
        digest.update(np.ascontiguousarray(q.imag).tobytes())
        digest.update(np.ascontiguousarray(power, dtype=np.float64).tobytes())
        return digest.digest()

    def get(self, key: bytes):
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        self.misses += 1
        return None

    def put(self, key: bytes, value) -> None:
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.maxsize:
            self._store.popitem(last=False)

    def __len__(self) -> int:
        return len(self._store)

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
