"""How far the transmission scheduler is from the best order, by enumerating every order.

Only for small slots (up to ~7 units: 7! = 5040 orders). Every order is timed with the same
rules as the simulator (serving-set choice, link queues, retransmissions) through
`delivery.scheduler.deliver(..., order=fixed_order(p))`; designs are shared across orders, so the
orders differ only in their sequence.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from delivery.channels import SlotChannels
from delivery.scheduler import DesignMemo, deliver, fixed_order
from delivery.simulator import Simulator


@dataclass(frozen=True)
class OrderGap:
    units: int
    scheduler_s: float  # mean user delay with the scheduler's order
    best_s: float  # least mean user delay over every order
    worst_s: float  # largest mean user delay over every order

    @property
    def gap(self) -> float:
        """Relative excess of the scheduler over the best order (0 = optimal)."""
        return self.scheduler_s / self.best_s - 1.0


def slot_units(sim: Simulator, placement: np.ndarray, requests: np.ndarray) -> list:
    """The units of one slot of `sim` with `placement` usable at once (no loads in flight)."""
    placement = sim.check_placement(placement)
    holder_ready = np.where(placement, 0.0, np.inf)
    source_ready = np.where(placement.any(axis=0), 0.0, np.inf)
    return sim._units(placement, holder_ready, np.asarray(requests), source_ready)


def mean_delay_with_order(sim: Simulator, units: list, channels: SlotChannels, order, memo: DesignMemo) -> float:
    """Mean user delay of `units` sent in `order` (None: the scheduler's), timed as the simulator does."""
    cfg = sim.config
    out = deliver(
        units,
        cfg.n_users,
        channels.h_est,
        channels.h_true,
        sim.power_w,
        cfg.channel_noise_w,
        cfg.channel_bandwidth_hz,
        sim.links,
        memo,
        cfg.beamformer,
        cfg.csi_error,
        np.random.default_rng(0),
        np.zeros(sim.n_nodes),
        np.zeros(sim.n_nodes),
        order=order,
        max_se=cfg.max_spectral_efficiency,
        more_est=channels.more_est,
        more_true=channels.more_true,
        coherence_s=cfg.coherence_time_s,
    )
    return float(out.user_delay_s.mean())


def order_gap(
    sim: Simulator, placement: np.ndarray, requests: np.ndarray, channels: SlotChannels, max_units: int = 7
) -> OrderGap:
    """Scheduler vs every order for one slot of `sim` (placement usable at once, fine/coarse).

    Raises ValueError when the slot has more than `max_units` units (the enumeration would be
    too long).
    """
    units = slot_units(sim, placement, requests)
    if len(units) > max_units:
        raise ValueError(f"{len(units)} units: enumerating every order needs at most {max_units}")
    shared = DesignMemo(sim.designer)

    def mean_delay(order) -> float:
        return mean_delay_with_order(sim, units, channels, order, shared)

    values = [mean_delay(fixed_order(list(p))) for p in itertools.permutations(range(len(units)))]
    return OrderGap(len(units), mean_delay(None), min(values), max(values))
