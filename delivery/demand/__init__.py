"""Request processes, one module each; the scenario's `demand` setting picks one.

- stationary: Zipf over per-region rankings with slow rank swaps (the earlier default);
- lifecycle: models released over time, popularity rising then decaying with age (the default);
- diurnal: daily cycles per model, offset between regions;
- spreading: trends that start in one cell and reach the neighbours with a lag;
- mobility: users walk between cells (random waypoint) and keep their own tastes;
- trace: the requests of a `slot,user,model` CSV file (`sim run --requests FILE`).

Every process draws one model per user per slot and exposes the coming slot's popularity.
Sources and which defaults are guesses: each module's docstring and docs/system-model.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from delivery.demand.base import DemandProcess
from delivery.demand.trace import TraceError, read_trace, write_trace

if TYPE_CHECKING:
    from delivery.config import ScenarioConfig
    from delivery.topology import Topology
    from pbkit.library import PBLibrary

from delivery.config import DEMANDS  # noqa: E402  (one list, in the config)


def make_process(
    config: ScenarioConfig, library: PBLibrary, topology: Topology, rng: np.random.Generator
) -> DemandProcess:
    """The request process the config names, on the library's models and the topology's users.

    Raises ConfigError (TraceError) for an unreadable or malformed trace file."""
    n_models, n_regions = len(library.models), config.n_nodes
    kind = config.demand
    if kind == "stationary":
        from delivery.demand.stationary import StationaryProcess

        return StationaryProcess(n_models, n_regions, config.zipf_gamma, config.drift_period, config.drift_swaps, rng)
    if kind == "lifecycle":
        from delivery.demand.lifecycle import LifecycleProcess, families

        fam, is_base = families(
            [m.kind for m in library.models], [m.base for m in library.models], [m.name for m in library.models]
        )
        return LifecycleProcess(
            n_models,
            n_regions,
            fam,
            is_base,
            config.zipf_gamma,
            config.lifecycle_release_rate,
            config.lifecycle_initial_share,
            config.lifecycle_rise_slots,
            config.lifecycle_decay_slots,
            config.lifecycle_decay_exponent,
            rng,
        )
    if kind == "diurnal":
        from delivery.demand.diurnal import DiurnalProcess

        return DiurnalProcess(
            n_models, n_regions, config.zipf_gamma, config.diurnal_period_slots, config.diurnal_amplitude, rng
        )
    if kind == "spreading":
        from delivery.demand.spreading import SpreadingProcess

        return SpreadingProcess(
            n_models,
            n_regions,
            topology.neighbours,
            config.zipf_gamma,
            config.spreading_period_slots,
            config.spreading_lag_slots,
            config.spreading_duration_slots,
            config.spreading_share,
            rng,
        )
    if kind == "mobility":
        from delivery.demand.mobility import MobilityProcess

        return MobilityProcess(
            n_models,
            n_regions,
            topology.node_xy,
            topology.user_xy,
            config.isd_m,
            config.min_distance_m,
            config.zipf_gamma,
            config.mobility_step_m,
            rng,
        )
    from delivery.demand.trace import TraceProcess

    table = read_trace(config.requests_file, [m.name for m in library.models], config.n_users)
    return TraceProcess(table, n_models, n_regions, rng)


__all__ = ["DEMANDS", "DemandProcess", "TraceError", "make_process", "read_trace", "write_trace"]
