"""One slot of delivery: multicast units, CoMP serving sets, preparation and the transmission order.

A *unit* is one multicast transmission: a PB (fine), a whole model (coarse) or a PB sent by one
home EN (noncoop). Units of one *channel* are sent one after another over that channel's band:
the cooperative modes have one channel (the full band); noncoop gives every EN its own channel on
an orthogonal 1/N of the band, so the cells transmit at the same time without interfering.

The order is chosen over users (`candidate_orders`): a readiness-aware Smith's rule over waiting users
(serve next the set of units that finishes the most users per second of channel time, counting
the idle time until their content is ready), improved by insertion local search on the estimated
total completion time. Every rule (serving set, order,
retransmission, link queues) is documented in docs/system-model.md, "Delivery".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from delivery.beamforming.result import ROBUST_METHODS
from delivery.beamforming.retransmission import MAX_SPECTRAL_EFFICIENCY, airtime, plan_delivery

# designer(h (K,S,L), power (S,), noise, method, eps, rng) -> object with .w (S, L) and .min_snr
Designer = Callable[..., Any]


@dataclass(frozen=True)
class Links:
    backhaul_bps: float
    cloud_bps: float
    cloud_latency_s: float


@dataclass(frozen=True)
class Unit:
    """One multicast transmission of `size` bytes to `users`."""

    size: int
    users: np.ndarray  # (G,) user indices
    candidates: np.ndarray  # ENs that may serve (CoMP range of the group, or the home EN)
    holder_ready: np.ndarray  # (N,) time each EN holds the content at; inf where it does not
    can_migrate: bool  # False in noncoop: only the cloud can fill a missing PB
    pbs: tuple[int, ...] = ()  # library PB indices the unit carries (arrival records)
    channel: int = 0  # units of one channel are sequential; channels run concurrently
    source_ready: float = math.inf  # an EN outside holder_ready can send it over the backhaul from then


@dataclass
class ScheduledUnit:
    unit: int
    serving: tuple[int, ...]
    fetch: dict[int, str]  # EN -> "backhaul" | "cloud" for ENs that had to fetch
    prep_s: float  # when every serving EN holds the content
    start_s: float
    airtime_s: float
    retx_s: float  # channel time after the first transmission (retransmission or HARQ rounds)
    failed: np.ndarray  # users (subset of the unit's) that needed more than the first transmission
    est_min_snr: float
    channel: int = 0
    failed_extra_s: np.ndarray | None = None  # per failed user, seconds after the first transmission
    # until it decoded (<= retx_s; None: retx_s for each)

    def extra_of(self) -> dict[int, float]:
        """Failed user -> seconds it waited after the first transmission."""
        extra = np.full(len(self.failed), self.retx_s) if self.failed_extra_s is None else self.failed_extra_s
        return {int(k): float(x) for k, x in zip(self.failed, extra)}


@dataclass
class DeliveryOutcome:
    user_delay_s: np.ndarray
    breakdown: dict[str, np.ndarray]
    backhaul_bytes: int
    cloud_bytes: int
    solver_calls: int
    cache_hits: int
    schedule: list[ScheduledUnit] = field(default_factory=list)
    # for user k: (PB index, arrival time s) of every block it received, in arrival order
    arrivals: list[list[tuple[int, float]]] = field(default_factory=list)
    fetched: set[tuple[int, int]] = field(default_factory=set)  # (EN, PB) filled on demand


class DesignMemo:
    """The slot's beamformer designs: one per (method, channels, budgets), counted.

    Units with the same users and serving set share one design within a slot; the memo also
    serves `plan_delivery`'s calls, so the serving-set choice and the transmission use one design.
    `prefetch` designs many channel arrays in one batch ahead of their use; a prefetched design
    is counted (`calls`) when first asked for, so the counts are those of designing one by one.
    """

    def __init__(self, designer: Designer) -> None:
        self._designer = designer
        self._memo: dict[tuple[str, bytes, bytes, float], Any] = {}
        self._spare: dict[tuple[str, bytes, bytes, float], Any] = {}  # prefetched, not asked for yet
        self.calls = 0
        self.hits = 0

    @staticmethod
    def _key(h: np.ndarray, power: np.ndarray, method: str, eps: float) -> tuple[str, bytes, bytes, float]:
        return (method, h.tobytes() + repr(h.shape).encode(), power.tobytes(), float(eps))

    def can_prefetch(self, method: str) -> bool:
        """Whether `prefetch` batches this method's designs: the designer must have a `batch`
        that solves them without drawing from the rng (beamformer.CachedDesigner.can_batch), so
        that a design made ahead, or made and never used, changes nothing else."""
        can = getattr(self._designer, "can_batch", None)
        return can is not None and bool(can(method))

    def prefetch(self, hs: list[np.ndarray], power, noise, method, eps=0.0, rng=None) -> None:
        """Design the channel arrays of `hs` (one shape) that the memo lacks in one batch, when
        `can_prefetch(method)` (beamforming.design_batch: the results are the ones designed one
        by one); later calls find them."""
        if not self.can_prefetch(method):
            return
        power = np.ascontiguousarray(power, dtype=float)
        todo: dict[tuple, np.ndarray] = {}
        for h in hs:
            h = np.ascontiguousarray(h)
            key = self._key(h, power, method, eps)
            if key not in self._memo and key not in self._spare:
                todo.setdefault(key, h)
        if len(todo) < 2:
            return
        stack = np.stack(list(todo.values()))
        for key, result in zip(todo, self._designer.batch(stack, power, noise, method, eps=eps, rng=rng)):
            self._spare[key] = result

    def __call__(self, h, power, noise, method, eps=0.0, rng=None, cache=None):
        h = np.ascontiguousarray(h)
        power = np.ascontiguousarray(power, dtype=float)
        key = self._key(h, power, method, eps)
        if key in self._memo:
            self.hits += 1
            return self._memo[key]
        self.calls += 1
        result = (
            self._spare.pop(key) if key in self._spare else self._designer(h, power, noise, method, eps=eps, rng=rng)
        )
        self._memo[key] = result
        return result


@dataclass(frozen=True)
class SlotRadio:
    """What every transmission of the slot shares: channels, budgets, band and beamformer."""

    h_est: np.ndarray  # (K, N, L)
    h_true: np.ndarray  # (K, N, L)
    power_w: np.ndarray  # (N,)
    noise_w: float
    bandwidth_hz: float  # of one channel
    links: Links
    method: str
    eps: float
    rng: np.random.Generator
    design: DesignMemo
    max_se: float = MAX_SPECTRAL_EFFICIENCY  # rate cap, b/s/Hz (retransmission.rate_bps)
    # further small-scale fading states (M-1, K, N, L) a long transmission passes through, one per
    # coherence block of `coherence_s` in turn (None: one state for the whole slot)
    more_est: np.ndarray | None = None
    more_true: np.ndarray | None = None
    coherence_s: float = math.inf
    # what depends only on a unit's users, serving set or candidates, not on when it is sent:
    # computed once a slot and shared by the timelines of every candidate order (`_memo`)
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def airtime(self, bits: float, snr: float) -> float:
        """The one rate rule (retransmission.airtime) on this slot's band and cap."""
        return airtime(bits, snr, self.bandwidth_hz, self.max_se)


class Timeline:
    """One channel's clock and the EN links it draws on; `send` times one unit and advances.

    The link queues (`backhaul_free`, `cloud_free`, per receiving EN) are shared between the
    channels of a slot; the channel clock `free` is this channel's own.
    """

    def __init__(self, radio: SlotRadio, units: list[Unit], backhaul_free: np.ndarray, cloud_free: np.ndarray) -> None:
        self.radio = radio
        self.units = units
        self.backhaul_free = backhaul_free
        self.cloud_free = cloud_free
        self.free = 0.0
        self.backhaul_bytes = 0
        self.cloud_bytes = 0
        self.fetched: set[tuple[int, int]] = set()

    def fork(self) -> "Timeline":
        """A copy whose sends do not touch this timeline (shared: radio, units, design memo)."""
        twin = Timeline(self.radio, self.units, self.backhaul_free.copy(), self.cloud_free.copy())
        twin.free = self.free
        twin.backhaul_bytes, twin.cloud_bytes = self.backhaul_bytes, self.cloud_bytes
        twin.fetched = set(self.fetched)
        return twin

    def adopt(self, twin: "Timeline") -> None:
        """Take over the state a fork reached (its sends become this timeline's). The link
        queues are updated in place: other channels' timelines share the arrays."""
        self.backhaul_free[:] = twin.backhaul_free
        self.cloud_free[:] = twin.cloud_free
        self.free = twin.free
        self.backhaul_bytes, self.cloud_bytes = twin.backhaul_bytes, twin.cloud_bytes
        self.fetched = set(twin.fetched)

    # ------------------------------------------------------------------ estimates
    def _source_ready(self, u: Unit) -> float:
        return min(float(u.holder_ready.min()), u.source_ready)

    def estimate(self, ui: int) -> tuple[float, float]:
        """(ready, airtime) of unit ui on the serving set `choose_serving` would pick now: when
        that set holds the content and how long the transmission takes at its guaranteed rate."""
        return self.estimate_serving(ui)[:2]

    def estimate_serving(self, ui: int) -> tuple[float, float, tuple[int, ...]]:
        """`estimate` and the serving set it is for."""
        u = self.units[ui]
        if u.size == 0:
            return self.free, 0.0, ()
        prep = self.preparation(u)
        chosen = prep[: self.choose_serving(u, prep)]
        serving = tuple(sorted(p[2] for p in chosen))
        snr = self._design(u.users, serving).min_snr
        return max(p[0] for p in chosen), self.radio.airtime(8 * u.size, snr), serving

    def first_serving(self, ui: int) -> tuple[tuple[int, ...], float]:
        """The serving set `choose_serving` designs first for unit ui now (the prefix of least
        bound), and that bound's airtime: a lower bound on the unit's first-state airtime."""
        u = self.units[ui]
        prep = self.preparation(u)
        ens, air_ub, bound = self._prefix_bounds(u, prep)
        first = min(range(len(prep)), key=lambda i: (bound[i], i))
        return tuple(sorted(ens[: first + 1])), air_ub[first]

    def prefetch(self, groups: list[tuple[np.ndarray, tuple[int, ...], list[int]]]) -> None:
        """Design ahead, in batches of one shape, the first designs of (users, serving set,
        fading states) that the slot is likely to ask for (DesignMemo.prefetch: only for
        designers that batch without the rng, so a design made ahead and never used changes no
        result; it costs only its share of a batch). Single users are skipped (closed form)."""
        r = self.radio
        if not r.design.can_prefetch(r.method):
            return
        batches: dict[tuple, list[np.ndarray]] = {}
        for users, serving, states in groups:
            if len(users) < 2 or not serving:
                continue
            idx = list(serving)
            for m in states:
                h_est = r.h_est if m == 0 else r.more_est[m - 1]
                h = h_est[users][:, idx, :]
                batches.setdefault((h.shape, r.power_w[idx].tobytes()), []).append(h)
        for (_, power), hs in batches.items():
            r.design.prefetch(hs, np.frombuffer(power), r.noise_w, r.method, r.eps, r.rng)

    def estimated_fetch(self, ui: int) -> tuple[int, float, float]:
        """(link, transfer s, fixed lead s) of the fetch unit ui needs, or (-1, 0, 0) when held.

        The link is (EN, backhaul or cloud) of the candidate that could hold it first; in a
        sending order, fetches on one link queue behind each other (`OrderEstimate.ready_in`).
        """
        u = self.units[ui]
        if np.isfinite(u.holder_ready[u.candidates]).any() or u.size == 0:
            return -1, 0.0, 0.0
        links = self.radio.links
        n = min((int(c) for c in u.candidates), key=lambda c: self._fetch_options(u, c)[0])
        _, how = self._fetch_options(u, n)
        if how == "backhaul":
            return 2 * n, 8 * u.size / links.backhaul_bps, max(self.backhaul_free[n], self._source_ready(u))
        return 2 * n + 1, 8 * u.size / links.cloud_bps, self.cloud_free[n] + links.cloud_latency_s

    # ------------------------------------------------------------------ one unit
    def _memo(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The slot's value for `key`, made on first use. Only for what is a function of the
        slot's channels and the key: the designs are (DesignMemo; the default designs draw
        nothing from the rng), so every candidate order's timing sees the same values."""
        memo = self.radio.memo
        if key not in memo:
            memo[key] = make()
        elif key[0] == "design":
            self.radio.design.hits += 1  # a design reused (the slot's cache_hits)
        return memo[key]

    def _design(self, users: np.ndarray, serving: tuple[int, ...]):
        r = self.radio
        idx = list(serving)
        return self._memo(
            ("design", users.tobytes(), serving),
            lambda: r.design(r.h_est[users][:, idx, :], r.power_w[idx], r.noise_w, r.method, r.eps, r.rng),
        )

    def _fetch_options(self, u: Unit, n: int) -> tuple[float, str]:
        """(ready time, route) for EN n to obtain unit u's content, on its own link queues."""
        links = self.radio.links
        via_cloud = self.cloud_free[n] + 8 * u.size / links.cloud_bps + links.cloud_latency_s
        src = self._source_ready(u)
        if u.can_migrate and np.isfinite(src):
            via_bh = max(self.backhaul_free[n], src) + 8 * u.size / links.backhaul_bps
            if via_bh <= via_cloud:
                return via_bh, "backhaul"
        return via_cloud, "cloud"

    def preparation(self, u: Unit) -> list[tuple[float, float, int, str]]:
        """Per candidate EN: (ready time, -weakest channel gain, EN, how), sorted."""
        gain = self._memo(
            ("gain", u.users.tobytes(), u.candidates.tobytes()),
            lambda: np.linalg.norm(self.radio.h_est[u.users][:, u.candidates, :], axis=2).min(axis=0).tolist(),
        )
        out = []
        for n, g in zip(u.candidates, gain):
            n = int(n)
            if np.isfinite(u.holder_ready[n]):
                out.append((float(u.holder_ready[n]), -g, n, "cached"))
            else:
                ready, how = self._fetch_options(u, n)
                out.append((ready, -g, n, how))
        out.sort()
        return out

    def choose_serving(self, u: Unit, prep: list[tuple[float, float, int, str]]) -> int:
        """How many of the ENs in `prep` order serve: the prefix with the earliest estimated end.

        `prep` is sorted by preparation time, then by the EN's weakest channel to the group.
        Every prefix is judged by the rate the configured beamformer guarantees on it: an EN
        ready later may not be worth the wait, and an extra EN can lower a design's guaranteed
        SNR (MRT spreads power by channel norm; a robust design's error ball grows with the
        stacked channel). Ties go to the smaller set (less link traffic).

        A prefix is designed only if it could win: no beamformer gives any user more than the
        single-user optimum (sum_n sqrt(p_n) ||h_kn||)^2 / noise, and no worst case within eps
        more than (1 - eps)^2 of it (|h^H w| <= sum_n ||h_n|| ||w_n|| <= ||h|| ||w||, so
        |h^H w| - eps ||h|| ||w|| <= (1 - eps) sum_n ||h_n|| ||w_n||), so that bound gives each
        prefix an earliest possible end; prefixes are designed in the order of that bound, and once the
        bound exceeds the best end found the rest are skipped (their designs could not win).
        """
        m = len(prep)
        if m == 1:
            return 1
        r = self.radio
        bits = 8 * u.size
        ens, air_ub, bound = self._prefix_bounds(u, prep)
        ends: dict[int, float] = {}
        best = math.inf
        for i in sorted(range(m), key=lambda i: (bound[i], i)):
            if bound[i] > best * (1 + 1e-9):
                break
            serving = tuple(sorted(ens[: i + 1]))
            if r.more_est is not None and air_ub[i] > r.coherence_s:
                # sent on this set the unit would pass through the further fading states too:
                # their designs in one batch with this one (made ahead, counted when used)
                self.prefetch([(u.users, serving, list(range(1 + len(r.more_est))))])
            snr = self._design(u.users, serving).min_snr
            ends[i + 1] = max(self.free, prep[i][0]) + r.airtime(bits, snr)
            best = min(best, ends[i + 1])
        best_end, best_r = math.inf, 1
        for size in sorted(ends):  # the rule of a full enumeration: ascending size, strict improvement
            if ends[size] < best_end * (1 - 1e-12):
                best_end, best_r = ends[size], size
        return best_r

    def _prefix_bounds(
        self, u: Unit, prep: list[tuple[float, float, int, str]]
    ) -> tuple[list[int], list[float], list[float]]:
        """The ENs of `prep` in order, and per prefix its airtime bound and earliest possible
        end (`choose_serving`'s bound; the airtimes are the slot's, memoised)."""
        ens = [p[2] for p in prep]
        air_ub = self._memo(("air_ub", u.users.tobytes(), u.size, tuple(ens)), lambda: self._airtime_bounds(u, ens))
        return ens, air_ub, [max(self.free, prep[i][0]) + air_ub[i] for i in range(len(prep))]

    def _airtime_bounds(self, u: Unit, ens: list[int]) -> list[float]:
        """Per prefix of `ens`: the airtime of unit u at the SNR bound of `choose_serving`."""
        r = self.radio
        amp = np.sqrt(r.power_w[ens])[None, :] * np.linalg.norm(r.h_est[u.users][:, ens, :], axis=2)  # (K, m)
        snr_ub = (np.cumsum(amp, axis=1) ** 2).min(axis=0) / r.noise_w  # (m,): prefix 1..m
        if r.method in ROBUST_METHODS:  # min_snr is a worst case within eps: at most (1 - eps)^2 of it
            snr_ub = snr_ub * max(0.0, 1.0 - r.eps) ** 2
        return [r.airtime(8 * u.size, snr_ub[i]) for i in range(len(ens))]

    def send(self, ui: int) -> ScheduledUnit:
        u = self.units[ui]
        if u.size == 0:
            return ScheduledUnit(ui, (), {}, self.free, self.free, 0.0, 0.0, np.empty(0, int), math.inf, u.channel)
        prep = self.preparation(u)
        chosen = prep[: self.choose_serving(u, prep)]
        serving = tuple(sorted(p[2] for p in chosen))
        prep_s = max(p[0] for p in chosen)
        fetch: dict[int, str] = {}
        for ready, _, n, how in chosen:
            if how == "backhaul":
                self.backhaul_free[n] = ready
                self.backhaul_bytes += u.size
            elif how == "cloud":
                self.cloud_free[n] = ready - self.radio.links.cloud_latency_s
                self.cloud_bytes += u.size
            else:
                continue
            fetch[n] = how
            self.fetched.update((n, j) for j in u.pbs)
        tau, retx, failed, extra, rate_snr = self._memo(
            ("transmit", u.users.tobytes(), u.size, serving), lambda: self._transmit(u, serving)
        )
        start = max(self.free, prep_s)
        self.free = start + tau + retx
        return ScheduledUnit(
            ui,
            serving,
            fetch,
            prep_s,
            start,
            tau,
            retx,
            u.users[failed],
            rate_snr,
            u.channel,
            failed_extra_s=extra[failed],
        )

    def _plan(self, u: Unit, serving: tuple[int, ...], state: int):
        r = self.radio
        idx = list(serving)
        if state == 0:
            h_est, h_true = r.h_est, r.h_true
        else:
            h_est, h_true = r.more_est[state - 1], r.more_true[state - 1]
        return plan_delivery(
            h_est[u.users][:, idx, :],
            h_true[u.users][:, idx, :],
            r.power_w[idx],
            r.noise_w,
            r.method,
            r.eps,
            r.rng,
            designer=r.design,
            max_se=r.max_se,
        )

    def _transmit(self, u: Unit, serving: tuple[int, ...]) -> tuple[float, float, np.ndarray, np.ndarray, float]:
        """(first-transmission s, retransmission s, failed (G,) bool, each user's extra s (G,),
        the first state's design SNR).

        The one airtime/retransmission rule is the plan's (retransmission.py). A transmission
        longer than a coherence block passes through the slot's fading states in turn, one per
        block, each state with its own design on its own CSI (the serving set stays): with m
        states used, each carries the bits of an equal share of the first transmission's time,
        so tau = bits / mean_m R1_m, m = min(M, ceil(tau / T_c)); each state's bits are then
        recovered by its own plan's rule, and the retransmissions add up.
        """
        r = self.radio
        bits = 8 * u.size
        n_states = 1 + (0 if r.more_est is None else len(r.more_est))
        plans = [self._plan(u, serving, 0)]
        used = 1
        while True:
            rates = np.array([bits / p.airtimes(bits, r.bandwidth_hz)[0] for p in plans[:used]])
            tau = bits / rates.mean()
            need = min(n_states, max(1, math.ceil(tau / r.coherence_s - 1e-9)))
            if need <= used:
                break
            # the first designs of the further states, in one batch (the same designs as one by one)
            idx = list(serving)
            r.design.prefetch(
                [r.more_est[m - 1][u.users][:, idx, :] for m in range(len(plans), need)],
                r.power_w[idx],
                r.noise_w,
                r.method,
                r.eps,
                r.rng,
            )
            plans += [self._plan(u, serving, m) for m in range(len(plans), need)]
            used = need
        share = bits * rates / rates.sum()  # bits each state carries in the first transmission
        extra = np.zeros(len(u.users))
        retx = 0.0
        for plan, b in zip(plans[:used], share):
            extra += plan.user_extra(b, r.bandwidth_hz)
            retx += plan.airtimes(b, r.bandwidth_hz)[1]
        return tau, retx, extra > 0, extra, float(plans[0].rate_snr)


class OrderEstimate:
    """Estimated total completion time of the waiting users for a given order of users.

    Sending in user order pi means: for each user in turn, send the units it still needs, in
    order of estimated readiness (then larger group first). Without preparation some optimal
    schedule has this form (exchange argument: a unit nobody completing earlier needs can move
    behind their completion without delaying anyone), so the search is over users, not units.
    A unit i ends at f_i = max(free, max_{j <= i} (r_j - S_{j-1})) + S_i, S the running sum of
    estimated airtimes c, r the estimated ready times; a user ends with its last unit.
    """

    def __init__(
        self,
        need: np.ndarray,
        ready: np.ndarray,
        cost: np.ndarray,
        group: np.ndarray,
        free: float,
        weight: np.ndarray | None = None,
        link: np.ndarray | None = None,
        transfer: np.ndarray | None = None,
        lead: np.ndarray | None = None,
    ) -> None:
        self.need = need  # (K', U) bool: class of waiting users x pending unit
        # users with the same needs form one class (they finish together in some optimal
        # schedule); weight = class size, and moves act on whole classes
        self.weight = np.ones(need.shape[0]) if weight is None else np.asarray(weight, dtype=float)
        self.ready = ready
        self.cost = cost
        self.group = group
        self.free = free
        self._big = need.shape[0] + 1
        # fetches: unit i needs `transfer[i]` s on link `link[i]` (-1: none) after `lead[i]`; in
        # a sending order they queue per link, which moves the ready times (`ready_in`)
        n_units = need.shape[1]
        self.link = np.full(n_units, -1) if link is None else np.asarray(link)
        self.transfer = np.zeros(n_units) if transfer is None else np.asarray(transfer, dtype=float)
        self.lead = np.zeros(n_units) if lead is None else np.asarray(lead, dtype=float)
        self._links = [int(x) for x in np.unique(self.link) if x >= 0]
        # sparse (class, unit) pairs, for reductions over only the needed entries
        cls, unit = np.nonzero(need)
        self._by_class = (unit, np.searchsorted(cls, np.arange(need.shape[0])))
        order = np.argsort(unit, kind="stable")
        self._by_unit = (cls[order], np.searchsorted(unit[order], np.arange(n_units)))
        self._static = np.empty(n_units, dtype=int)
        self._static[np.lexsort((np.arange(n_units), -group, ready))] = np.arange(n_units)
        # the units that fetch, grouped by link (for `totals`): within a group they queue in
        # sending order; `_link_slices` are the groups' column ranges
        self._linked = np.concatenate([np.nonzero(self.link == lk)[0] for lk in self._links] or [np.empty(0, int)])
        sizes = [int((self.link == lk).sum()) for lk in self._links]
        self._link_rank = np.repeat(np.arange(len(sizes)), sizes)
        ends = np.cumsum(sizes)
        self._link_slices = [(int(e - z), int(e)) for z, e in zip(sizes, ends)]

    def ready_in(self, seq: np.ndarray) -> np.ndarray:
        """Ready time of every unit (indexed like `seq`'s entries) when fetches queue in `seq` order."""
        ready = self.ready.copy()
        if not self._links:
            return ready
        link = self.link[seq]
        for lk in self._links:
            pos = seq[link == lk]
            ready[pos] = self.lead[pos] + np.cumsum(self.transfer[pos])
        return ready

    def sequence(self, perm: np.ndarray) -> np.ndarray:
        """Unit positions (into the pending list) in sending order for user order `perm`."""
        pos = np.empty(len(perm), dtype=int)
        pos[perm] = np.arange(len(perm))
        batch = np.where(self.need, pos[:, None], self._big).min(axis=0)
        return np.lexsort((np.arange(len(batch)), -self.group, self.ready, batch))

    def finish(self, seq: np.ndarray) -> np.ndarray:
        """Estimated end time of each unit (indexed like the pending list) when sent in `seq`."""
        c = self.cost[seq]
        s = np.cumsum(c)
        start_floor = np.maximum.accumulate(np.maximum(self.free, self.ready_in(seq)[seq] - (s - c)))
        out = np.empty(len(seq))
        out[seq] = start_floor + s
        return out

    def total(self, perm: np.ndarray) -> float:
        return float(self.totals(np.asarray(perm)[None, :])[0])

    def totals(self, perms: np.ndarray) -> np.ndarray:
        """`total` for every row of perms (M, K'), vectorised over the rows (the local search
        scores all its moves at once)."""
        m, n_units = perms.shape[0], self.need.shape[1]
        # Sort keys as int16 where they fit: numpy's stable sort is a radix sort for 16-bit
        # integers (3x faster here); the keys are distinct, so every sort gives the same order.
        small = (perms.shape[1] + 1) * n_units < np.iinfo(np.int16).max and (len(self._links) + 1) * n_units < np.iinfo(
            np.int16
        ).max
        idx = np.int16 if small else np.int64
        pos = np.empty(perms.shape, dtype=idx)
        np.put_along_axis(pos, perms, np.arange(perms.shape[1], dtype=idx)[None, :].repeat(m, axis=0), axis=1)
        cls_of, starts = self._by_unit  # every pending unit has at least one waiting class
        batch = np.minimum.reduceat(pos[:, cls_of], starts, axis=1)  # (M, U): first class needing u
        # sending order: by batch, then the static (ready, -group, index) rank
        seq = np.argsort(batch * idx(n_units) + self._static.astype(idx)[None, :], axis=1, kind="stable")  # (M, U)
        place = np.empty(seq.shape, dtype=idx)  # where each unit is sent
        np.put_along_axis(place, seq, np.arange(n_units, dtype=idx)[None, :].repeat(m, axis=0), axis=1)
        c = self.cost[seq]
        s = np.cumsum(c, axis=1)
        r_seq = self.ready[seq]  # ready time of the unit sent at each place
        if self._links:
            # a fetching unit is ready once its link has carried the fetches sent before it and
            # its own: per link, a running sum of the transfers in sending order (the sums of
            # `ready_in`, term by term)
            at = place[:, self._linked]  # (M, F): where each fetching unit is sent
            order = np.argsort(self._link_rank.astype(idx)[None, :] * idx(n_units) + at, axis=1, kind="stable")
            units = self._linked[order]
            queued = self.transfer[units]
            for a, b in self._link_slices:
                np.cumsum(queued[:, a:b], axis=1, out=queued[:, a:b])
            r_seq[np.arange(m)[:, None], np.take_along_axis(at, order, axis=1)] = self.lead[units] + queued
        floor = np.maximum.accumulate(np.maximum(self.free, r_seq - (s - c)), axis=1)
        finish = floor + s  # (M, U) by place: non-decreasing (both terms are, and rounding is monotone)
        unit_of, starts = self._by_class  # every class needs at least one unit
        # so a class is done when its last unit is: the finish at its largest place
        last = np.maximum.reduceat(place[:, unit_of], starts, axis=1)  # (M, K')
        done = np.take_along_axis(finish, last.astype(np.intp), axis=1)
        return done @ self.weight

    def greedy(self) -> np.ndarray:
        """Smith's rule on batches: repeatedly serve the waiting user whose remaining units
        complete the most users per second of (readiness-aware) channel time."""
        n_users = self.need.shape[0]
        left = self.need.copy()
        waiting = np.ones(n_users, dtype=bool)
        perm: list[int] = []
        free = self.free
        order_key = np.lexsort((np.arange(self.need.shape[1]), -self.group, self.ready))
        while waiting.any():
            best = None
            for k in np.nonzero(waiting)[0]:
                sel = order_key[left[k, order_key]]
                c, r = self.cost[sel], self.ready[sel]
                suffix = np.cumsum(c[::-1])[::-1]
                end = max(free + float(c.sum()), float((r + suffix).max())) if len(sel) else free
                done = waiting & ~(left & ~left[k]).any(axis=1)
                count = float(self.weight[done].sum())
                key = ((end - free) / count, -count, end - free, int(k))
                if best is None or key < best[0]:
                    best = (key, done, end, k)
            _, done, end, k = best
            perm.append(int(k))
            perm.extend(int(x) for x in np.nonzero(done)[0] if x != k)
            waiting &= ~done
            left[:, left[k].copy()] = False
            free = end
        return np.array(perm, dtype=int)

    def improve(self, perm: np.ndarray, max_passes: int = 30) -> np.ndarray:
        """Local search on the class order: every move of one class to another place and every
        swap of two classes is scored at once; the best is taken while it improves."""
        perm = np.asarray(perm)
        n = len(perm)
        if n < 2:
            return perm
        best = self.total(perm)
        moves = _neighbourhood(n)
        for _ in range(max_passes):
            cands = perm[moves]
            values = self.totals(cands)
            k = int(np.argmin(values))
            if values[k] >= best * (1 - 1e-9):
                break
            best, perm = float(values[k]), cands[k]
        return perm

    def starts(self) -> list[np.ndarray]:
        """Initial class orders: the batch greedy, and shortest remaining work per user first."""
        work = (self.need * self.cost[None, :]).sum(axis=1) / self.weight
        return [self.greedy(), np.argsort(work, kind="stable")]


@functools.lru_cache(maxsize=64)
def _neighbourhood(n: int) -> np.ndarray:
    """Index rows turning an order of n into each of its neighbours: every move of one entry to
    another place (i -> j), then every swap (i, j) with i < j."""
    rows = []
    base = list(range(n))
    for i in range(n):
        for j in range(n):
            if i != j:
                moved = base[:i] + base[i + 1 :]
                moved.insert(j, i)
                rows.append(moved)
    for i in range(n):
        for j in range(i + 1, n):
            swapped = list(base)
            swapped[i], swapped[j] = j, i
            rows.append(swapped)
    return np.array(rows, dtype=int)


def order_estimate(
    pending: list[int],
    units: list[Unit],
    free: float,
    ready: dict[int, float],
    cost: dict[int, float],
    fetches: dict[int, tuple[int, float, float]] | None = None,
) -> OrderEstimate:
    """The OrderEstimate of `pending`: its waiting users grouped into classes by the units they
    need, with each unit's estimated readiness, airtime and (optional) fetch over a link."""
    users = sorted({int(k) for ui in pending for k in units[ui].users})
    row = {k: i for i, k in enumerate(users)}
    need = np.zeros((len(users), len(pending)), dtype=bool)
    for col, ui in enumerate(pending):
        need[[row[int(k)] for k in units[ui].users], col] = True
    classes, weight = np.unique(need, axis=0, return_counts=True)
    fetch = np.array([fetches[ui] for ui in pending], dtype=float).reshape(-1, 3) if fetches else None
    return OrderEstimate(
        classes,
        np.array([ready[ui] for ui in pending]),
        np.array([cost[ui] for ui in pending]),
        np.array([len(units[ui].users) for ui in pending]),
        free,
        weight,
        *((fetch[:, 0].astype(int), fetch[:, 1], fetch[:, 2]) if fetch is not None else ()),
    )


def candidate_orders(
    pending: list[int],
    units: list[Unit],
    free: float,
    ready: dict[int, float],
    cost: dict[int, float],
    fetches: dict[int, tuple[int, float, float]] | None = None,
) -> list[list[int]]:
    """Distinct sending orders worth timing exactly: the local-search optimum from each start of
    `OrderEstimate` (best estimate first), then the units by estimated readiness, larger group
    first (the simple rule; never worse than it)."""
    if not pending:
        return [[]]
    est = order_estimate(pending, units, free, ready, cost, fetches)
    perms = sorted((est.improve(p) for p in est.starts()), key=est.total)
    out: list[list[int]] = []
    for seq in [[pending[i] for i in est.sequence(p)] for p in perms] + [
        sorted(pending, key=lambda ui: (ready[ui], -len(units[ui].users), ui))
    ]:
        if seq not in out:
            out.append(seq)
    return out


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
    order: Callable[[list[int], Timeline], list[ScheduledUnit]] | None = None,
    max_se: float = MAX_SPECTRAL_EFFICIENCY,
    more_est: np.ndarray | None = None,
    more_true: np.ndarray | None = None,
    coherence_s: float = math.inf,
) -> DeliveryOutcome:
    """Schedule and time every unit; returns per-user delays with their exact breakdown.

    `bandwidth_hz` is one channel's band, `noise_w` the noise over it, `max_se` the cap on
    spectral efficiency (b/s/Hz) of the one rate rule; `more_est`/`more_true` (M-1, K, N, L) the
    further fading states a transmission longer than `coherence_s` passes through (SlotChannels). `order(unit_ids, timeline)` replaces the scheduler
    (tests compare it with every order of a small instance); it must `timeline.send` each unit
    once and return the ScheduledUnits in sending order.
    """
    memo = DesignMemo(designer)
    radio = SlotRadio(
        h_est,
        h_true,
        np.asarray(power_w, dtype=float),
        noise_w,
        bandwidth_hz,
        links,
        method,
        eps,
        rng,
        memo,
        max_se,
        more_est,
        more_true,
        coherence_s,
    )
    backhaul_free = backhaul_free.astype(float).copy()
    cloud_free = cloud_free.astype(float).copy()
    schedule: list[ScheduledUnit] = []
    bh_bytes = cloud_bytes = 0
    fetched: set[tuple[int, int]] = set()
    by_channel: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        by_channel.setdefault(u.channel, []).append(i)
    delay = np.zeros(n_users)
    parts = {key: np.zeros(n_users) for key in ("waiting", "preparation", "airtime", "retransmission")}
    seen = np.zeros(n_users, dtype=bool)
    for channel in sorted(by_channel):
        timeline = Timeline(radio, units, backhaul_free, cloud_free)
        ids = by_channel[channel]
        sent = (order or smith_order)(ids, timeline)
        if sorted(s.unit for s in sent) != sorted(ids):
            raise ValueError(f"channel {channel}: the order did not send every unit exactly once")
        users_here = np.zeros(n_users, dtype=bool)
        for ui in ids:
            users_here[units[ui].users] = True
        if (users_here & seen).any():
            raise ValueError(f"channel {channel}: a user has units on two channels")
        seen |= users_here
        d, b = _account(units, sent, n_users)
        delay += d
        for key in parts:
            parts[key] += b[key]
        schedule.extend(sent)
        bh_bytes += timeline.backhaul_bytes
        cloud_bytes += timeline.cloud_bytes
        fetched |= timeline.fetched
    return DeliveryOutcome(
        user_delay_s=delay,
        breakdown=parts,
        backhaul_bytes=int(bh_bytes),
        cloud_bytes=int(cloud_bytes),
        solver_calls=memo.calls,
        cache_hits=memo.hits,
        schedule=schedule,
        arrivals=_arrivals(units, schedule, n_users),
        fetched=fetched,
    )


def smith_order(ids: list[int], timeline: Timeline) -> list[ScheduledUnit]:
    """The scheduler: the candidate orders of `candidate_orders` (from the slot-start estimates)
    are each timed exactly on a copy of the timeline, and the best is sent. The estimates fix a
    unit's serving set at the slot start; when it is sent later more ENs may be ready and the set
    (and so its airtime) changes, which the exact timing sees and the estimate does not."""
    # Designs ahead, in batches (identical results): each unit's first serving-set design, in
    # every fading state when even its bound's airtime outlasts a coherence block; then the
    # further states of the serving sets the estimates chose.
    r = timeline.radio
    states = range(1 + (0 if r.more_est is None else len(r.more_est)))
    live = [ui for ui in ids if timeline.units[ui].size > 0]
    firsts = {ui: timeline.first_serving(ui) for ui in live}
    timeline.prefetch(
        [
            (timeline.units[ui].users, serving, list(states) if air > r.coherence_s else [0])
            for ui, (serving, air) in firsts.items()
        ]
    )
    estimates = {ui: timeline.estimate_serving(ui) for ui in ids}
    timeline.prefetch(
        [
            (timeline.units[ui].users, estimates[ui][2], list(states)[1:])
            for ui in live
            if estimates[ui][1] > r.coherence_s
        ]
    )
    ready = {ui: e[0] for ui, e in estimates.items()}
    cost = {ui: e[1] for ui, e in estimates.items()}
    fetches = {ui: timeline.estimated_fetch(ui) for ui in ids}
    orders = candidate_orders(list(ids), timeline.units, timeline.free, ready, cost, fetches)
    if len(orders) == 1:
        return [timeline.send(ui) for ui in orders[0]]
    best: tuple[float, Timeline, list[ScheduledUnit]] | None = None
    for seq in orders:
        twin = timeline.fork()
        sent = [twin.send(ui) for ui in seq]
        total = _completion_sum(timeline.units, sent)
        if best is None or total < best[0]:  # the first of equal orders, as min() picks
            best = (total, twin, sent)
    # Sending the best order again would repeat its timing exactly (same designs from the slot's
    # memo, nothing else random): take over its fork's clock and link queues instead.
    timeline.adopt(best[1])
    return best[2]


def _completion_sum(units: list[Unit], sent: list[ScheduledUnit]) -> float:
    """Sum over users of the end of their last unit (retransmission included where they needed it)."""
    done: dict[int, float] = {}
    for item in sent:
        first = item.start_s + item.airtime_s
        extra = item.extra_of()
        for k in units[item.unit].users:
            done[int(k)] = max(done.get(int(k), 0.0), first + extra.get(int(k), 0.0))
    return sum(done.values())


def fixed_order(sequence: list[int]) -> Callable[[list[int], Timeline], list[ScheduledUnit]]:
    """An order that sends the units of `sequence` as listed (for checks against the optimum)."""

    def order(ids: list[int], timeline: Timeline) -> list[ScheduledUnit]:
        wanted = set(ids)
        return [timeline.send(ui) for ui in sequence if ui in wanted]

    return order


def _arrivals(units: list[Unit], schedule: list[ScheduledUnit], n_users: int) -> list[list[tuple[int, float]]]:
    out: list[list[tuple[int, float]]] = [[] for _ in range(n_users)]
    for item in schedule:
        u = units[item.unit]
        first = item.start_s + item.airtime_s
        extra = item.extra_of()
        for k in u.users:
            out[int(k)].extend((j, first + extra.get(int(k), 0.0)) for j in u.pbs)
    for row in out:
        row.sort(key=lambda a: (a[1], a[0]))
    return out


def _account(units, schedule, n_users) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Split every user's delay on one channel into waiting + preparation + airtime + retransmission.

    The channel timeline up to the end of user k's last unit is a sequence of idle gaps
    (waiting for preparation) and busy periods (airtime, retransmissions). Idle gaps count as
    k's preparation, k's own units' airtime and retransmissions as its airtime and
    retransmission (its own share: a HARQ user that decoded after 2 of 3 rounds is charged 1),
    everything else (other users' units, or retransmission time k did not need) as waiting. The four parts sum to the delay exactly. Users without units here get zeros.
    """
    n_units = len(schedule)
    idle = np.zeros(n_units)
    busy = np.zeros(n_units)
    member = np.zeros((n_units, n_users), dtype=bool)
    own_extra = np.zeros((n_units, n_users))
    air = np.zeros(n_units)
    retx = np.zeros(n_units)
    free = 0.0
    for s, item in enumerate(schedule):
        idle[s] = max(item.start_s - free, 0.0)  # >= 0 by construction; drop rounding
        air[s], retx[s] = item.airtime_s, item.retx_s
        busy[s] = item.airtime_s + item.retx_s
        member[s, units[item.unit].users] = True
        for k, x in item.extra_of().items():
            own_extra[s, k] = x
        free = item.start_s + busy[s]
    last = np.where(member.any(axis=0), n_units - 1 - np.argmax(member[::-1], axis=0), -1)
    cum_idle = np.cumsum(idle)
    cum_busy = np.cumsum(busy)
    has = last >= 0
    delay = np.zeros(n_users)
    prep = np.zeros(n_users)
    li = last[has]
    # a user leaves its last unit once it decoded, before the rest of that unit's retransmissions
    delay[has] = cum_idle[li] + cum_busy[li] - (retx[li] - own_extra[li, np.nonzero(has)[0]])
    prep[has] = cum_idle[li]
    airtime_s = member.T.astype(float) @ air
    retrans = own_extra.sum(axis=0)
    waiting = delay - prep - airtime_s - retrans
    return delay, {
        "waiting": np.maximum(waiting, 0.0),
        "preparation": prep,
        "airtime": airtime_s,
        "retransmission": retrans,
    }
