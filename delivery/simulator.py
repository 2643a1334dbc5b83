"""The slot-by-slot simulator: the one object policies and the learner drive.

A slot: the policy sees a `PolicyView` (no requests yet), returns a placement; `step` validates
it, charges its change, draws the slot's requests and channels, delivers, and advances.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from delivery.channels import SlotChannels, draw_states
from delivery.config import ScenarioConfig
from delivery.demand import DemandProcess, make_process
from delivery.errors import CapacityError, ConfigError
from delivery.modes import cooperative, sends_models
from delivery.scheduler import DeliveryOutcome, Designer, Links, Unit, deliver
from delivery.storage import complete_models, project_scores, serving_placement, storage_bytes
from delivery.topology import Topology, build_topology, relocate
from pbkit.library import PBLibrary


@dataclass(frozen=True)
class PolicyView:
    """What a proactive caching policy may see BEFORE the slot's requests."""

    slot: int
    capacity_bytes: np.ndarray  # (N,)
    pb_bytes: np.ndarray  # (J,)
    membership: np.ndarray  # (I, J) bool, model i needs PB j
    placement: np.ndarray  # (N, J) bool, the current placement (previous slot's)
    request_counts: np.ndarray  # (N, I) cumulative requests seen at each EN (users by home EN)
    last_requests: np.ndarray  # (N, I) requests in the last slot
    users_per_node: np.ndarray  # (N,)
    neighbours: np.ndarray  # (N, N) bool
    mean_gain_db: np.ndarray  # (K, N) large-scale gain of each user to each EN
    user_home: np.ndarray  # (K,)
    mode: str = "fine"  # storage accounting the placement is checked against
    config: ScenarioConfig | None = None  # link rates etc., for policies with a delay proxy
    # The future (requests, channels) for reference policies only: oracle, search (delivery.truth)
    truth: Any = None


@dataclass(frozen=True)
class SlotResult:
    slot: int
    mean_delay_s: float
    user_delay_s: np.ndarray  # (K,)
    breakdown: dict[str, np.ndarray]  # "waiting", "preparation", "airtime", "retransmission": (K,)
    requests: np.ndarray  # (K,) model index requested by each user
    hit_ratio_local: float  # share of requested PB bytes cached at the user's home EN
    hit_ratio_edge: float  # share available at some EN (cached or migratable)
    backhaul_bytes: int  # all EN-EN traffic of the slot, placement change included
    cloud_bytes: int  # all cloud-EN traffic of the slot, placement change included
    placement_change_bytes: int  # bytes newly written into caches this slot
    solver_calls: int
    cache_hits: int
    delay_lower_bound_s: float = 0.0  # placement-free bound on mean_delay_s (docs: "Limits")
    # for user k: (PB index, arrival time s) of every block it received, in arrival order
    arrivals: list[list[tuple[int, float]]] | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "mean_delay_s": self.mean_delay_s,
            "breakdown_s": {k: float(v.mean()) for k, v in self.breakdown.items()},
            "hit_ratio_local": self.hit_ratio_local,
            "hit_ratio_edge": self.hit_ratio_edge,
            "backhaul_bytes": self.backhaul_bytes,
            "cloud_bytes": self.cloud_bytes,
            "placement_change_bytes": self.placement_change_bytes,
            "solver_calls": self.solver_calls,
            "cache_hits": self.cache_hits,
            "delay_lower_bound_s": self.delay_lower_bound_s,
        }


def default_designer() -> Designer:
    """delivery.beamforming.design with one BeamformerCache per simulator: its compiled cvxpy
    problems are reused across slots (what makes sdr/robust affordable); its `batch` designs a
    group's fading states at once (beamforming.design_batch)."""
    from delivery.beamforming import CachedDesigner

    return CachedDesigner()


class Simulator:
    def __init__(
        self,
        config: ScenarioConfig,
        library: PBLibrary,
        rng: np.random.Generator,
        designer: Designer | None = None,
        topology: Topology | None = None,
    ) -> None:
        """`designer` and `topology` replace the beamformer and the random drop (tests, replays)."""
        library.validate()
        self.config = config
        self.library = library
        self.designer = designer or default_designer()
        # Separate streams so that placements (and solver randomisation) can never change
        # the users, requests or channels another policy sees under the same seed.
        topo_rng, req_rng, chan_rng, self._bf_rng = rng.spawn(4)
        self._chan_rng = chan_rng
        self.pb_bytes = library.pb_sizes()
        self.membership = library.membership()
        self.model_bytes = self.membership.astype(np.int64) @ self.pb_bytes
        self.n_nodes = config.n_nodes
        self.n_pbs = len(self.pb_bytes)
        self.n_models = len(self.model_bytes)
        unique = int(self.pb_bytes[self.membership.any(axis=0)].sum())
        # A PB larger than the capacity is uncacheable: no placement holds it (storage and the
        # policies only place what fits), so every request for it is served from the cloud
        # through CoMP like any other missing PB. Not a configuration error (issue 15).
        cap = config.cache_bytes if config.cache_bytes is not None else int(config.cache_fraction * unique)
        self.capacity_bytes = np.full(self.n_nodes, cap, dtype=np.int64)
        self.topology: Topology = topology or build_topology(
            topo_rng,
            config.n_nodes,
            config.n_users,
            config.isd_m,
            config.shadowing_db,
            config.min_distance_m,
        )
        if self.topology.gain_db.shape != (config.n_users, config.n_nodes):
            raise ConfigError(
                f"topology gains {self.topology.gain_db.shape} do not match "
                f"(n_users, n_nodes) = {(config.n_users, config.n_nodes)}"
            )
        self._set_range()
        self.requests: DemandProcess = make_process(config, library, self.topology, req_rng)
        self.power_w = np.full(self.n_nodes, config.power_w)
        self.links = Links(config.backhaul_bps, config.cloud_bps, config.cloud_latency_s)
        self.placement = np.zeros((self.n_nodes, self.n_pbs), dtype=bool)
        self.request_counts = np.zeros((self.n_nodes, self.n_models), dtype=np.int64)
        self.last_requests = np.zeros((self.n_nodes, self.n_models), dtype=np.int64)
        self.slot = 0
        # cache_loads "shared": link time still taken by the last slot's cache loads at this
        # slot's start (per receiving EN), and when each loaded PB arrives (s into this slot)
        self._busy_backhaul = np.zeros(self.n_nodes)
        self._busy_cloud = np.zeros(self.n_nodes)
        self._loading = np.zeros((self.n_nodes, self.n_pbs))

    def _set_range(self) -> None:
        """CoMP range: EN n may join the serving set of a group containing user k."""
        t = self.topology
        home_gain = t.gain_db[np.arange(len(t.user_home)), t.user_home]
        self.in_range = t.gain_db >= home_gain[:, None] - self.config.comp_margin_db

    # ------------------------------------------------------------------ views and helpers
    def policy_view(self) -> PolicyView:
        t = self.topology
        return PolicyView(
            slot=self.slot,
            capacity_bytes=self.capacity_bytes.copy(),
            pb_bytes=self.pb_bytes.copy(),
            membership=self.membership.copy(),
            placement=self.placement.copy(),
            request_counts=self.request_counts.copy(),
            last_requests=self.last_requests.copy(),
            users_per_node=t.users_per_node,
            neighbours=t.neighbours.copy(),
            mean_gain_db=t.gain_db.copy(),
            user_home=t.user_home.copy(),
            mode=self.config.mode,
            config=self.config,
            truth=Truth(self),
        )

    def fork(self) -> "Simulator":
        """An independent copy in the same state: its next slots draw the very requests and
        channels this simulator will (random streams copied), and stepping it changes nothing
        here. Shares the library, designer and read-only arrays."""
        twin = copy.copy(self)
        for name in (
            "_chan_rng",
            "_bf_rng",
            "requests",
            "placement",
            "request_counts",
            "last_requests",
            "_busy_backhaul",
            "_busy_cloud",
            "_loading",
        ):
            setattr(twin, name, copy.deepcopy(getattr(self, name)))
        return twin

    def project(self, placement_scores: np.ndarray) -> np.ndarray:
        """Best feasible placement for per-(N, J) scores: greedy by score per byte, positives only."""
        scores = np.asarray(placement_scores, dtype=float)
        if scores.shape != (self.n_nodes, self.n_pbs):
            raise CapacityError(f"scores shape {scores.shape} is not (N, J) = {(self.n_nodes, self.n_pbs)}")
        return project_scores(scores, self.pb_bytes, self.capacity_bytes, self.membership, self.config.mode)

    def check_placement(self, placement: np.ndarray) -> np.ndarray:
        arr = np.asarray(placement)
        if arr.shape != (self.n_nodes, self.n_pbs):
            raise CapacityError(f"placement shape {arr.shape} is not (N, J) = {(self.n_nodes, self.n_pbs)}")
        if arr.dtype != bool:
            if not np.isin(arr, (0, 1)).all():
                raise CapacityError("placement entries must be boolean (0/1)")
            arr = arr.astype(bool)
        used = storage_bytes(arr, self.membership, self.pb_bytes, self.config.mode)
        over = np.nonzero(used > self.capacity_bytes)[0]
        if len(over):
            n = int(over[0])
            raise CapacityError(
                f"placement at EN {n} uses {int(used[n])} bytes ({self.config.mode} accounting), "
                f"capacity is {int(self.capacity_bytes[n])}"
            )
        return arr

    # ------------------------------------------------------------------ one slot
    def step(
        self, placement: np.ndarray, channels: SlotChannels | None = None, requests: np.ndarray | None = None
    ) -> SlotResult:
        """Validate the placement, draw the slot's requests and channels, deliver, advance.

        `channels` and `requests` may be given to replay or hand-check a slot; the random
        streams still advance as if drawn, so later slots do not depend on the injection.
        """
        cfg = self.config
        new = self.check_placement(placement)
        home = self.topology.user_home
        drawn_requests = self.requests.draw(home)
        drawn_channels = draw_states(
            self._chan_rng, self.topology.gain_lin, cfg.antennas, cfg.csi_error, cfg.fading_states
        )
        requests = drawn_requests if requests is None else np.asarray(requests, dtype=int)
        channels = drawn_channels if channels is None else channels

        holder_ready, source_ready = self._holders(new)
        units = self._units(new, holder_ready, requests, source_ready)
        outcome: DeliveryOutcome = deliver(
            units,
            cfg.n_users,
            channels.h_est,
            channels.h_true,
            self.power_w,
            # noncoop: every EN on its own orthogonal 1/N of the band, with that band's noise
            cfg.channel_noise_w,
            cfg.channel_bandwidth_hz,
            self.links,
            self.designer,
            cfg.beamformer,
            cfg.csi_error,
            self._bf_rng,
            self._busy_backhaul.copy(),
            self._busy_cloud.copy(),
            max_se=cfg.max_spectral_efficiency,
            more_est=channels.more_est,
            more_true=channels.more_true,
            coherence_s=cfg.coherence_time_s,
        )
        change_bytes, bh_bytes, cloud_bytes = self._background_loads(new, outcome.fetched)
        self._queue_loads(new, outcome.fetched, float(outcome.user_delay_s.max(initial=0.0)))
        local, edge = self._hit_ratios(new, requests)
        result = SlotResult(
            slot=self.slot,
            mean_delay_s=float(outcome.user_delay_s.mean()),
            user_delay_s=outcome.user_delay_s,
            breakdown=outcome.breakdown,
            requests=requests,
            hit_ratio_local=local,
            hit_ratio_edge=edge,
            backhaul_bytes=bh_bytes + outcome.backhaul_bytes,
            cloud_bytes=cloud_bytes + outcome.cloud_bytes,
            placement_change_bytes=change_bytes,
            solver_calls=outcome.solver_calls,
            cache_hits=outcome.cache_hits,
            delay_lower_bound_s=self._lower_bound(channels, requests),
            arrivals=outcome.arrivals,
        )
        self.last_outcome = outcome
        counts = np.zeros_like(self.last_requests)
        np.add.at(counts, (home, requests), 1)
        self.last_requests = counts
        self.request_counts += counts
        self.placement = new
        self.slot += 1
        moved = self.requests.positions()
        if moved is not None:  # mobility: the next slot's users are elsewhere
            self.topology = relocate(self.topology, moved)
            self._set_range()
        return result

    def _holders(self, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """When each EN can send each PB from its cache, and when a migration source has it.

        holder_ready[n, j] is 0 where EN n holds PB j from the start of the slot and inf
        elsewhere. Slot 0 starts from caches filled off-line. Later, with change_cost "delay", a
        PB newly placed at n is not there yet: it is loaded by need. If this slot's delivery
        needs it at n, the on-demand fetch that the schedule makes is its load (usable once it
        arrives); otherwise it is loaded in the background after the slot's transfers and
        serves from the next slot on (`_background_loads`). So a cache load never queues ahead
        of a block a user is waiting for. With change_cost "separate" the new placement is
        usable at once and its loads are only counted in bytes.

        source_ready[j] is 0 when some EN held PB j at the slot start (the previous placement,
        read out before the slot's evictions take effect), so it can migrate over the backhaul;
        noncoop uses no EN-to-EN links.
        """
        usable = new if (self.slot == 0 or self.config.change_cost == "separate") else new & self.placement
        usable = usable & self._serving(new)  # whole-model storage: a stray PB serves nothing
        holder_ready = np.where(usable, self._loading, np.inf)  # shared loads: ready on arrival
        held = self._serving(self.placement).any(axis=0) | usable.any(axis=0)
        source_ready = np.where(held & cooperative(self.config.mode), 0.0, np.inf)
        return holder_ready, source_ready

    def _serving(self, placement: np.ndarray) -> np.ndarray:
        """(N, J) the PBs each EN can send from its cache under the mode's storage accounting."""
        return serving_placement(placement, self.membership, self.config.mode)

    def _shared_loads(self) -> bool:
        return self.config.cache_loads == "shared" and self.config.change_cost == "delay"

    def _queue_loads(self, new: np.ndarray, fetched: set[tuple[int, int]], slot_s: float) -> None:
        """cache_loads "shared": queue this slot's background loads on each EN's links from the
        slot's end (after what the previous loads still hold, if they outlast the slot); the
        next slot starts with those links busy and each loaded PB ready when it arrives.
        A conservative model: a link idle before the slot's end is not used for loads."""
        self._loading = np.zeros((self.n_nodes, self.n_pbs))
        if not self._shared_loads() or self.slot == 0:
            self._busy_backhaul = np.zeros(self.n_nodes)
            self._busy_cloud = np.zeros(self.n_nodes)
            return
        links = self.links
        bh = np.maximum(self._busy_backhaul - slot_s, 0.0)
        cloud = np.maximum(self._busy_cloud - slot_s, 0.0)
        added = new & ~self.placement
        held_before = self._serving(self.placement).any(axis=0) & cooperative(self.config.mode)
        for n, j in zip(*np.nonzero(added)):
            if (int(n), int(j)) in fetched:
                continue  # fetched on demand this slot: already in the cache
            size = float(self.pb_bytes[j])
            if held_before[j]:
                bh[n] += 8 * size / links.backhaul_bps
                self._loading[n, j] = bh[n]
            else:
                cloud[n] += 8 * size / links.cloud_bps
                self._loading[n, j] = cloud[n] + links.cloud_latency_s
        self._busy_backhaul, self._busy_cloud = bh, cloud

    def _background_loads(self, new: np.ndarray, fetched: set[tuple[int, int]]) -> tuple[int, int, int]:
        """Bytes of this slot's placement change: (all added, via backhaul, via cloud).

        The added PBs that the delivery did not already fetch on demand are loaded after the
        slot's transfers: over the backhaul from an EN that held them (not in noncoop), else from
        the cloud. They cost no delay this slot.
        """
        if self.slot == 0:
            return 0, 0, 0
        added = new & ~self.placement
        held_before = self._serving(self.placement).any(axis=0) & cooperative(self.config.mode)
        change = bh = cloud = 0
        for n, j in zip(*np.nonzero(added)):
            size = int(self.pb_bytes[j])
            change += size
            if (int(n), int(j)) in fetched:
                continue  # its on-demand fetch is already counted in the delivery's traffic
            if held_before[j]:
                bh += size
            else:
                cloud += size
        return change, bh, cloud

    def _units(
        self,
        placement: np.ndarray,
        holder_ready: np.ndarray,
        requests: np.ndarray,
        source_ready: np.ndarray | None = None,
    ) -> list[Unit]:
        if source_ready is None:
            source_ready = np.full(self.n_pbs, np.inf)
        if not cooperative(self.config.mode):
            return self._noncoop_units(holder_ready, requests)
        if sends_models(self.config.mode):
            return self._model_units(placement, holder_ready, requests, source_ready)
        return self._pb_units(holder_ready, requests, source_ready)

    def _pb_units(self, holder_ready: np.ndarray, requests: np.ndarray, source_ready: np.ndarray) -> list[Unit]:
        """One unit per requested PB, broadcast to every user whose model needs it."""
        need = self.membership[requests]  # (K, J)
        units: list[Unit] = []
        for j in np.nonzero(need.any(axis=0))[0]:
            users = np.nonzero(need[:, j])[0]
            cand = np.nonzero(self.in_range[users].any(axis=0))[0]
            units.append(
                Unit(
                    int(self.pb_bytes[j]),
                    users,
                    cand,
                    holder_ready[:, j],
                    True,
                    pbs=(int(j),),
                    source_ready=float(source_ready[j]),
                )
            )
        return units

    def _model_units(
        self, placement: np.ndarray, holder_ready: np.ndarray, requests: np.ndarray, source_ready: np.ndarray
    ) -> list[Unit]:
        """One unit per requested model (its PBs shared with other requested models go out once
        per model); EN n sends it from its cache only if it holds the whole model."""
        complete = complete_models(placement, self.membership)
        units: list[Unit] = []
        for i in np.unique(requests):
            users = np.nonzero(requests == i)[0]
            cand = np.nonzero(self.in_range[users].any(axis=0))[0]
            pbs = self.membership[i]
            ready = np.where(complete[:, i], holder_ready[:, pbs].max(axis=1), np.inf)
            source = float(source_ready[pbs].max())
            units.append(
                Unit(
                    int(self.model_bytes[i]),
                    users,
                    cand,
                    ready,
                    True,
                    pbs=tuple(int(j) for j in np.nonzero(pbs)[0]),
                    source_ready=source,
                )
            )
        return units

    def _noncoop_units(self, holder_ready: np.ndarray, requests: np.ndarray) -> list[Unit]:
        """Each EN serves its own users on its own channel, PB by PB, no migration."""
        need = self.membership[requests]  # (K, J)
        home = self.topology.user_home
        units: list[Unit] = []
        for n in np.unique(home):
            mine = home == n
            for j in np.nonzero(need[mine].any(axis=0))[0]:
                users = np.nonzero(mine & need[:, j])[0]
                ready = np.full(self.n_nodes, np.inf)
                ready[n] = holder_ready[n, j]
                units.append(
                    Unit(int(self.pb_bytes[j]), users, np.array([n]), ready, False, pbs=(int(j),), channel=int(n))
                )
        return units

    def _hit_ratios(self, placement: np.ndarray, requests: np.ndarray) -> tuple[float, float]:
        """Shares of the requested bytes an EN can send from its cache: at the user's home EN
        (local) and at some EN (edge; noncoop has no other EN). Where delivery sends whole
        models only a complete model counts."""
        home = self.topology.user_home
        total = float(self.model_bytes[requests].sum())
        if total == 0:
            return 1.0, 1.0
        if sends_models(self.config.mode):
            complete = complete_models(placement, self.membership)
            local = float((complete[home, requests] * self.model_bytes[requests]).sum())
            edge = float((complete[:, requests].any(axis=0) * self.model_bytes[requests]).sum())
            return local / total, edge / total
        need = self.membership[requests]
        held = self._serving(placement)
        local = float(((need & held[home]).astype(np.int64) @ self.pb_bytes).sum())
        if not cooperative(self.config.mode):
            return local / total, local / total
        edge = float(((need & held.any(axis=0)).astype(np.int64) @ self.pb_bytes).sum())
        return local / total, edge / total

    def _lower_bound(self, channels: SlotChannels, requests: np.ndarray) -> float:
        """Mean over users of 8 * model bytes / best single-user rate with every EN at full power.

        No multicast beamformer gives user k more than the single-user optimum
        (sum_n sqrt(P_n) ||h_kn||)^2 / sigma^2 under per-EN budgets, every byte of k's model
        must reach k, and preparation and waiting are non-negative: a bound for any placement,
        order, serving set, beamformer and mode. The rate is the one rate rule's (capped);
        noncoop's B/N with the noise of B/N gives no more than B with the noise of B. With
        several fading states a transmission's rate is a mean over states, so at most the best
        state's: the bound takes each user's best state.
        """
        from delivery.beamforming.retransmission import rate_bps

        cfg = self.config
        h_true = np.stack([true for _, true in channels.states()])  # (M, K, N, L)
        amp = (np.sqrt(self.power_w)[None, None, :] * np.linalg.norm(h_true, axis=3)).sum(axis=2).max(axis=0)
        rate = rate_bps(amp**2 / cfg.noise_w, cfg.bandwidth_hz, cfg.max_spectral_efficiency)
        return float((8 * self.model_bytes[requests] / rate).mean())


class Truth:
    """What a reference policy may know and no real policy can: the coming slots' demand.

    Reads a fork of the simulator (`Simulator.fork`), so asking changes nothing in the run.
    Only references use it (oracle, search); see docs/system-model.md, "Policies".
    """

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._demand: dict[int, np.ndarray] = {}

    @property
    def slot(self) -> int:
        return self._sim.slot

    def fork(self) -> Simulator:
        """A copy of the simulator at the coming slot (requests and channels as they will be)."""
        return self._sim.fork()

    def popularity(self) -> np.ndarray:
        """(R, I) the request process's popularity per region in the coming slot."""
        return np.array(self._sim.requests.popularity())

    def requests(self, slot: int) -> np.ndarray:
        """(K,) the model each user will request in `slot` (>= the coming slot)."""
        if slot < self._sim.slot:
            raise ValueError(f"slot {slot} is in the past (coming slot {self._sim.slot})")
        proc = copy.deepcopy(self._sim.requests)
        topo = self._sim.topology
        for _ in range(slot - self._sim.slot):
            proc.draw(topo.user_home)
            moved = proc.positions()
            if moved is not None:
                topo = relocate(topo, moved)
        return proc.draw(topo.user_home)

    def demand(self, slot: int) -> np.ndarray:
        """(N, I) expected requests of each model at each EN in `slot` (>= the coming slot):
        the summed request probabilities of the users homed there then."""
        if slot < self._sim.slot:
            raise ValueError(f"slot {slot} is in the past (coming slot {self._sim.slot})")
        if slot not in self._demand:
            proc = copy.deepcopy(self._sim.requests)
            homes = self._sim.topology.user_home
            topo = self._sim.topology
            for _ in range(slot - self._sim.slot):
                proc.draw(homes)
                moved = proc.positions()
                if moved is not None:
                    topo = relocate(topo, moved)
                    homes = topo.user_home
            pmf = proc.user_popularity(homes)
            out = np.zeros((self._sim.n_nodes, self._sim.n_models))
            np.add.at(out, homes, pmf)
            self._demand[slot] = out
        return self._demand[slot]
