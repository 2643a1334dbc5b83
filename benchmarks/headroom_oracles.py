"""Oracle variants that test why `oracle` (greedy fed the true demand) gains little over greedy
in the default regime (docs/results.md part 0, "Why oracle misses the target").

Each is a policy for `--policy headroom_oracles:CLASS` (this directory on PYTHONPATH):

    PYTHONPATH=benchmarks pbkit sim headroom --library hub-catalogue --set beamformer=mrt \
        --seeds 10 --slots 8 --warmup 2 --regimes default --policies greedy,oracle \
        --policy headroom_oracles:KeepSmall --policy headroom_oracles:KeepLarge \
        --policy headroom_oracles:Multicast --out /tmp/headroom-variants

- `KeepSmall`, `KeepLarge`: oracle plus a bonus for every PB an EN already holds (0.05 or 0.2
  requests per user of the EN), so a placement changes only where the new demand outweighs a
  load: tests whether oracle loses its gain to the cache loads it causes.
- `Multicast`: oracle with the weight of PB j at EN n the expected number of the two slots in
  which at least one of n's users asks for j (1 - (1 - q)^users), not the expected number of
  requests: one broadcast serves every user of a PB, so a second request adds little airtime.

They read `view.truth` like oracle: references, not policies a system could run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from delivery.policies import greedy_proxy
from delivery.proxy import proxy_instance
from delivery.references import OraclePolicy


class _OracleVariant(OraclePolicy):
    keep_bonus = 0.0  # weight added to a held PB, in requests per user of the EN
    multicast = False

    def place(self, view, rng: np.random.Generator | None = None) -> np.ndarray:
        if view.mode != "fine":
            raise ValueError(f"{self.name} is written for the fine mode, not {view.mode!r}")
        truth = view.truth
        slots = (view.slot, view.slot + 1)
        member = view.membership.astype(float)
        if self.multicast:
            users = view.users_per_node[:, None].astype(float)
            weight = np.zeros((len(view.capacity_bytes), member.shape[1]))
            for t in slots:
                d = truth.demand(t)
                share = d / np.maximum(d.sum(axis=1, keepdims=True), 1e-12)
                q = np.clip(share @ member, 0.0, 1.0)  # P(one user asks for a model using j)
                weight += 1.0 - (1.0 - q) ** users
        else:
            weight = sum(truth.demand(t) for t in slots) @ member
        if view.slot > 0 and self.keep_bonus:
            weight = weight + self.keep_bonus * view.users_per_node[:, None] * view.placement
        return greedy_proxy(dataclasses.replace(proxy_instance(view), weight=weight))


class KeepSmall(_OracleVariant):
    name = "oracle-keep0.05"
    keep_bonus = 0.05


class KeepLarge(_OracleVariant):
    name = "oracle-keep0.2"
    keep_bonus = 0.2


class Multicast(_OracleVariant):
    name = "oracle-multicast"
    multicast = True
