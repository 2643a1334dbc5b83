"""One slot of delivery: multicast units, CoMP serving sets, preparation, sequential airtime.

A *unit* is one multicast transmission: a PB (fine), a whole model (coarse) or a PB sent by one
home EN (noncoop). Units are sent one after another over the full band. The rules (serving set,
order, retransmission, link queues) are documented in docs/system-model.md, "Delivery".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from delivery.channels import snr

# designer(h (K,S,L), power (S,), noise, method, eps, rng) -> object with .w (S, L) and .min_snr
Designer = Callable[..., Any]

_SNR_FLOOR = 1e-12  # a group nobody can hear still gets a finite (huge) airtime


@dataclass(frozen=True)
class Links:
    backhaul_bps: float
    cloud_bps: float
    cloud_latency_s: float


@dataclass(frozen=True)
class Unit:
    """One multicast transmission of `size` bytes to `users`."""

    size: int
    users: np.ndarray          # (G,) user indices
    candidates: np.ndarray     # ENs that may serve (CoMP range of the group, or the home EN)
    holder_ready: np.ndarray   # (N,) time each EN holds the content at; inf where it does not
    can_migrate: bool          # False in noncoop: only the cloud can fill a missing PB


@dataclass
class ScheduledUnit:
    unit: int
    serving: tuple[int, ...]
    fetch: dict[int, str]      # EN -> "backhaul" | "cloud" for ENs that had to fetch
    prep_s: float              # when every serving EN holds the content
    start_s: float
    airtime_s: float
    retx_s: float
    failed: np.ndarray         # users (subset of the unit's) that needed the retransmission
    est_min_snr: float


@dataclass
class DeliveryOutcome:
    user_delay_s: np.ndarray
    breakdown: dict[str, np.ndarray]
    backhaul_bytes: int
    cloud_bytes: int
    solver_calls: int
    cache_hits: int
    schedule: list[ScheduledUnit] = field(default_factory=list)


def deliver(
    units: list[Unit],
    n_users: int,
    h_est: np.ndarray,
    h_true: np.ndarray,
    power_w: np.ndarray,
    noise_w: float,
    bandwidth_hz: float,
    links: Links,
    designer: Designer,
    method: str,
    eps: float,
    rng: np.random.Generator,
    backhaul_free: np.ndarray,
    cloud_free: np.ndarray,
) -> DeliveryOutcome:
    """Schedule and time every unit; returns per-user delays with their exact breakdown."""
    backhaul_free = backhaul_free.astype(float).copy()
    cloud_free = cloud_free.astype(float).copy()
    memo: dict[tuple[str, bytes, tuple[int, ...]], tuple[float, np.ndarray]] = {}
    calls = hits = 0
    bh_bytes = cloud_bytes = 0

    def design(users: np.ndarray, serving: tuple[int, ...], how: str = method) -> tuple[float, np.ndarray]:
        # Units with the same users and serving set share one beamformer within a slot.
        nonlocal calls, hits
        key = (how, users.tobytes(), serving)
        if key in memo:
            hits += 1
            return memo[key]
        calls += 1
        idx = list(serving)
        h = h_est[users][:, idx, :]
        result = designer(h, power_w[idx], noise_w, how, eps=eps, rng=rng)
        true = snr(np.asarray(result.w), h_true[users][:, idx, :], noise_w)
        memo[key] = (max(float(result.min_snr), _SNR_FLOOR), true)
        return memo[key]

    def serving_of(prefix: list[tuple[float, int, str]]) -> tuple[int, ...]:
        return tuple(sorted(p[1] for p in prefix))

    def standalone_ready(u: Unit) -> float:
        held = u.holder_ready[u.candidates]
        if np.isfinite(held).any():
            return float(held.min())
        src = u.holder_ready.min()
        cloud = links.cloud_latency_s + 8 * u.size / links.cloud_bps
        if u.can_migrate and np.isfinite(src):
            return min(float(src) + 8 * u.size / links.backhaul_bps, cloud)
        return cloud

    order = sorted(range(len(units)), key=lambda i: (standalone_ready(units[i]), -len(units[i].users), i))
    free = 0.0
    schedule: list[ScheduledUnit] = []
    for ui in order:
        u = units[ui]
        if u.size == 0:
            schedule.append(ScheduledUnit(ui, (), {}, free, free, 0.0, 0.0, np.empty(0, int), math.inf))
            continue
        src_ready = float(u.holder_ready.min())
        prep: list[tuple[float, int, str]] = []
        for n in u.candidates:
            n = int(n)
            if np.isfinite(u.holder_ready[n]):
                prep.append((float(u.holder_ready[n]), n, "cached"))
                continue
            via_cloud = cloud_free[n] + 8 * u.size / links.cloud_bps + links.cloud_latency_s
            if u.can_migrate and np.isfinite(src_ready):
                via_bh = max(backhaul_free[n], src_ready) + 8 * u.size / links.backhaul_bps
                if via_bh <= via_cloud:
                    prep.append((via_bh, n, "backhaul"))
                    continue
            prep.append((via_cloud, n, "cloud"))
        prep.sort()
        # Serving-set options: prefixes of the ENs sorted by preparation time, always
        # including every EN that is ready by the time the channel frees (it costs no wait).
        first = max(1, sum(1 for p in prep if p[0] <= free))
        r = first
        if first < len(prep):
            # Several options: pick by estimated end time with the closed-form MRT (cheap),
            # then design only the chosen set with the configured method.
            best_end = math.inf
            for option in range(first, len(prep) + 1):
                est_mrt, _ = design(u.users, serving_of(prep[:option]), "mrt")
                end = max(free, prep[option - 1][0]) + 8 * u.size / (bandwidth_hz * math.log2(1.0 + est_mrt))
                if end <= best_end:
                    best_end, r = end, option
        est, true = design(u.users, serving_of(prep[:r]))
        chosen = prep[:r]
        prep_s = chosen[-1][0]
        fetch = {}
        for p, n, kind in chosen:
            if kind == "backhaul":
                backhaul_free[n] = p
                bh_bytes += u.size
                fetch[n] = kind
            elif kind == "cloud":
                cloud_free[n] = p - links.cloud_latency_s
                cloud_bytes += u.size
                fetch[n] = kind
        tau = 8 * u.size / (bandwidth_hz * math.log2(1.0 + est))
        # Retransmission rule (the one of delivery.beamforming.plan_delivery): users whose true
        # SNR is below the rate's SNR fail; right after the unit the serving set resends it with
        # a beamformer designed on the failed users' estimates, at the rate their true min SNR
        # under it supports (fed back with the NACK), so the second attempt decodes.
        failed_mask = true < est * (1.0 - 1e-9)
        retx = 0.0
        if failed_mask.any():
            _, true2 = design(u.users[failed_mask], serving_of(chosen))
            worst = max(float(true2.min()), _SNR_FLOOR)
            retx = 8 * u.size / (bandwidth_hz * math.log2(1.0 + worst))
        start = max(free, prep_s)
        schedule.append(ScheduledUnit(ui, serving_of(chosen), fetch, prep_s,
                                      start, tau, retx, u.users[failed_mask], est))
        free = start + tau + retx
    return _account(units, schedule, n_users, bh_bytes, cloud_bytes, calls, hits)


def _account(units, schedule, n_users, bh_bytes, cloud_bytes, calls, hits) -> DeliveryOutcome:
    """Split every user's delay into waiting + preparation + airtime + retransmission.

    The channel timeline up to the end of user k's last unit is a sequence of idle gaps
    (waiting for preparation) and busy periods (airtime, retransmissions). Idle gaps count as
    k's preparation, k's own units' airtime and retransmissions as its airtime and
    retransmission, everything else (other users' units, or a retransmission k did not need)
    as waiting. The four parts sum to the delay exactly.
    """
    n_units = len(schedule)
    idle = np.zeros(n_units)
    busy = np.zeros(n_units)
    member = np.zeros((n_units, n_users), dtype=bool)
    failed = np.zeros((n_units, n_users), dtype=bool)
    air = np.zeros(n_units)
    retx = np.zeros(n_units)
    free = 0.0
    for s, item in enumerate(schedule):
        idle[s] = max(item.start_s - free, 0.0)  # >= 0 by construction; drop rounding
        air[s], retx[s] = item.airtime_s, item.retx_s
        busy[s] = item.airtime_s + item.retx_s
        member[s, units[item.unit].users] = True
        failed[s, item.failed] = True
        free = item.start_s + busy[s]
    last = np.where(member.any(axis=0), n_units - 1 - np.argmax(member[::-1], axis=0), -1)
    cum_idle = np.cumsum(idle)
    cum_busy = np.cumsum(busy)
    has = last >= 0
    delay = np.zeros(n_users)
    prep = np.zeros(n_users)
    li = last[has]
    # a user that decoded its last unit first time leaves before that unit's retransmission
    delay[has] = cum_idle[li] + cum_busy[li] - np.where(failed[li, np.nonzero(has)[0]], 0.0, retx[li])
    prep[has] = cum_idle[li]
    airtime = member.T.astype(float) @ air
    retrans = failed.T.astype(float) @ retx
    waiting = delay - prep - airtime - retrans
    return DeliveryOutcome(
        user_delay_s=delay,
        breakdown={"waiting": np.maximum(waiting, 0.0), "preparation": prep,
                   "airtime": airtime, "retransmission": retrans},
        backhaul_bytes=int(bh_bytes),
        cloud_bytes=int(cloud_bytes),
        solver_calls=calls,
        cache_hits=hits,
        schedule=schedule,
    )
