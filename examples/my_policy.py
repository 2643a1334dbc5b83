"""A caching policy of your own, run without editing pbkit (docs/experiments.md, "Your own policy").

pbkit sim run --library hub-catalogue --policy examples.my_policy:RecentGreedy --slots 5
"""

import numpy as np


class RecentGreedy:
    """Keep, at each EN, the PBs most needed by the last slot's requests there, per byte."""

    name = "recent-greedy"

    def place(self, view, rng: np.random.Generator) -> np.ndarray:
        # view: delivery.simulator.PolicyView (what a real EN knows before the slot's requests)
        wanted = (view.last_requests + 0.01 * view.request_counts) @ view.membership  # (N, J)
        out = np.zeros((len(view.capacity_bytes), len(view.pb_bytes)), dtype=bool)
        for n in range(len(out)):
            left = int(view.capacity_bytes[n])
            for j in np.argsort(-wanted[n] / view.pb_bytes, kind="stable"):
                if wanted[n, j] > 0 and view.pb_bytes[j] <= left:
                    out[n, j], left = True, left - int(view.pb_bytes[j])
        return out  # (N, J) bool within each EN's capacity
