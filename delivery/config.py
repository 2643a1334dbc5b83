"""Scenario settings: one frozen dataclass, loaded from YAML/TOML and validated on construction.

Every default and its source is listed in docs/system-model.md ("Defaults").
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from delivery.beamforming.result import METHODS as BEAMFORMERS  # one list of beamforming methods
from delivery.errors import ConfigError
from delivery.modes import MODES, cooperative  # what each mode changes: delivery/modes.py
from pbkit.common.settings import find_settings_file, load_settings, load_typed, read_settings

DEMANDS = ("stationary", "lifecycle", "diurnal", "spreading", "mobility", "trace")  # delivery/demand/
CHANGE_COSTS = ("delay", "separate")
CACHE_LOADS = ("shared", "background")


@dataclass(frozen=True)
class ScenarioConfig:
    # topology and radio
    n_nodes: int = 4
    antennas: int = 4
    isd_m: float = 250.0
    power_dbm: float = 30.0
    n_users: int = 20
    bandwidth_hz: float = 100e6
    noise_figure_db: float = 9.0
    shadowing_db: float = 0.0  # 8.0 when enabled (3GPP TR 36.814 small-cell/macro value)
    min_distance_m: float = 10.0  # users are dropped no closer than this to any EN
    csi_error: float = 0.1
    comp_margin_db: float = 10.0  # EN n may serve user k if beta_kn >= beta_k,home - margin
    # physics (issue 15): the rate cap of the one rate rule, b/s/Hz: 3GPP TS 38.214 Table
    # 5.1.3.1-2 (256QAM) MCS 27, 948/1024 x 8 (= delivery.beamforming.MAX_SPECTRAL_EFFICIENCY)
    max_spectral_efficiency: float = 7.4063
    # small-scale fading per coherence block: T_c = 0.423 / f_D (Rappaport, Wireless
    # Communications, eq. 5.40c) at f_D = v f_c / c = 9.72 Hz (pedestrian 3 km/h, f_c = 3.5 GHz)
    coherence_time_s: float = 0.0435
    fading_states: int = 4  # independent states a long transmission cycles through (1: frozen)
    # caching
    # C_n as a fraction of the library's unique bytes: 4 ENs x 0.03 hold 12 % of the catalogue
    # together (issue 15: at most half), where placement matters on hub-catalogue (docs/results.md
    # "Headroom"; at 0.125 the ENs hold nearly every requested byte). "everything-fits": 0.3 x 4 = 1.2
    cache_fraction: float = 0.03
    cache_bytes: int | None = None  # explicit C_n in bytes; overrides cache_fraction
    change_cost: str = "delay"  # "delay": loading new PBs delays the slot; "separate": only counted
    # With change_cost "delay": "shared": a slot's background cache loads run on the EN's backhaul
    # and cloud links from the slot's end, so they hold up the next slot's fetches and a loaded PB
    # serves from its arrival; "background": loads are free and ready by the next slot (before
    # issue 15). docs/system-model.md, "Placement changes".
    cache_loads: str = "shared"
    # requests (delivery/demand/; sources and guesses in docs/system-model.md, "Demand")
    demand: str = "lifecycle"  # one of DEMANDS
    zipf_gamma: float = 0.8  # skew of the Zipf weights every process draws popularity from
    drift_period: int = 10  # stationary: slots between rank swaps
    drift_swaps: int = 2  # stationary: swaps per drift
    lifecycle_release_rate: float = 2.0  # new derivative models per slot (Poisson mean)
    lifecycle_initial_share: float = 0.5  # share of derivatives released before slot 0
    lifecycle_rise_slots: float = 1.0
    lifecycle_decay_slots: float = 8.0
    lifecycle_decay_exponent: float = 1.0
    diurnal_period_slots: int = 24
    diurnal_amplitude: float = 0.8
    spreading_period_slots: int = 4
    spreading_lag_slots: int = 1
    spreading_duration_slots: int = 8
    spreading_share: float = 0.4
    mobility_step_m: float = 50.0
    requests_file: str | None = None  # demand "trace": a slot,user,model CSV
    # links
    backhaul_bps: float = 1e9
    cloud_bps: float = 200e6
    cloud_latency_s: float = 0.02
    # delivery
    # robust: the rate every user of a group decodes for any CSI error within csi_error (no
    # retransmissions); tens of ms per group (docs/beamforming.md). See BEAMFORMERS for the others.
    beamformer: str = "robust"
    mode: str = "fine"  # one of MODES (delivery/modes.py)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "cache_bytes":
                if value is not None:
                    _check_int(f.name, value, minimum=1)
                continue
            if f.name == "requests_file":
                if value is not None and not isinstance(value, str):
                    raise ConfigError(f"requests_file = {value!r} is not a path")
                continue
            if f.type == "int":
                _check_int(f.name, value, minimum=0)
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name} = {value!r} is not a number")
                if not math.isfinite(value):
                    raise ConfigError(f"{f.name} = {value!r} is not finite")
                object.__setattr__(self, f.name, float(value))
            elif f.type == "str" and not isinstance(value, str):
                raise ConfigError(f"{f.name} = {value!r} is not a string")
        positive = (
            "n_nodes",
            "antennas",
            "n_users",
            "drift_period",
            "isd_m",
            "bandwidth_hz",
            "backhaul_bps",
            "cloud_bps",
            "zipf_gamma",
            "cache_fraction",
            "lifecycle_rise_slots",
            "lifecycle_decay_slots",
            "diurnal_period_slots",
            "spreading_period_slots",
            "spreading_duration_slots",
            "max_spectral_efficiency",
            "coherence_time_s",
            "fading_states",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} = {getattr(self, name)!r} must be positive")
        for name in (
            "noise_figure_db",
            "shadowing_db",
            "min_distance_m",
            "cloud_latency_s",
            "comp_margin_db",
            "lifecycle_release_rate",
            "lifecycle_decay_exponent",
            "mobility_step_m",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} = {getattr(self, name)!r} must not be negative")
        if not -30.0 <= self.power_dbm <= 60.0:
            raise ConfigError(f"power_dbm = {self.power_dbm} is outside the physical range [-30, 60] dBm")
        if not 0.0 <= self.csi_error < 1.0:
            raise ConfigError(f"csi_error = {self.csi_error} is not in [0, 1)")
        if self.cache_fraction > 1.0:
            raise ConfigError(f"cache_fraction = {self.cache_fraction} is above 1")
        if self.min_distance_m >= self.isd_m / math.sqrt(3):
            raise ConfigError(f"min_distance_m = {self.min_distance_m} leaves no room in a cell of ISD {self.isd_m} m")
        for name in ("lifecycle_initial_share", "diurnal_amplitude", "spreading_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} = {getattr(self, name)} is not in [0, 1]")
        if (self.demand == "trace") != (self.requests_file is not None):
            raise ConfigError(
                "demand = 'trace' needs requests_file (sim run --requests FILE.csv)"
                if self.requests_file is None
                else f"requests_file = {self.requests_file!r} needs demand = 'trace', not {self.demand!r}"
            )
        for name, allowed in (
            ("beamformer", BEAMFORMERS),
            ("mode", MODES),
            ("change_cost", CHANGE_COSTS),
            ("cache_loads", CACHE_LOADS),
            ("demand", DEMANDS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} = {getattr(self, name)!r} is not one of {', '.join(allowed)}")

    # ------------------------------------------------------------------ derived quantities
    @property
    def power_w(self) -> float:
        return 10 ** ((self.power_dbm - 30.0) / 10.0)

    @property
    def noise_w(self) -> float:
        """Thermal noise -174 dBm/Hz over the whole band plus the receiver noise figure."""
        return self.noise_w_over(self.bandwidth_hz)

    def noise_w_over(self, band_hz: float) -> float:
        """Thermal noise -174 dBm/Hz over `band_hz` plus the receiver noise figure, in W."""
        dbm = -174.0 + 10.0 * math.log10(band_hz) + self.noise_figure_db
        return 10 ** ((dbm - 30.0) / 10.0)

    @property
    def channel_bandwidth_hz(self) -> float:
        """The band one channel transmits on: the whole band in the cooperative modes, an
        orthogonal 1/N of it per EN in noncoop (docs/system-model.md, "Delivery")."""
        return self.bandwidth_hz if cooperative(self.mode) else self.bandwidth_hz / self.n_nodes

    @property
    def channel_noise_w(self) -> float:
        """Noise over the band one channel actually uses (`channel_bandwidth_hz`): a receiver
        filters out the rest of the band, so noncoop at N ENs sees 1/N of the full band's noise."""
        return self.noise_w_over(self.channel_bandwidth_hz)

    # ------------------------------------------------------------------ construction
    def replace(self, **overrides: Any) -> "ScenarioConfig":
        known = {f.name for f in fields(self)}
        for key in overrides:
            if key not in known:
                raise ConfigError(f"unknown scenario setting {key!r}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> "ScenarioConfig":
        return load_typed(cls, data, where, ConfigError)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ScenarioConfig":
        """Read a YAML (.yaml/.yml) or TOML (.toml) file of settings; unknown keys are errors."""
        path = Path(path)
        data = read_settings(path, ConfigError)
        return cls.from_dict(data, where=str(path))

    @classmethod
    def build(
        cls,
        source: str | os.PathLike[str] | None = None,
        overrides: Sequence[str] | Mapping[str, Any] = (),
        where: str = "--set",
    ) -> "ScenarioConfig":
        """The scenario of every command: the defaults (`source` None), a settings file or a
        bundled scenario name (`bundled_scenarios()`), then `key=value` overrides; `where` names
        the options the overrides came from in errors. Raises ConfigError."""
        return load_settings(
            cls,
            source,
            error=ConfigError,
            kind="scenario",
            bundled=bundled_scenarios(),
            overrides=overrides,
            where=where,
        )


def bundled_scenarios() -> dict[str, Path]:
    """The scenarios shipped as package data, by name (default, small)."""
    return {p.stem: p for p in sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))}


def scenario_keys(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings a scenario file or bundled scenario writes (only those keys), checked as a
    scenario: what `--scenario` layers over another command's own scenario settings (the
    training config's `scenario`, a report plan's). Raises ConfigError naming the file."""
    path = find_settings_file(source, bundled_scenarios(), "scenario", ConfigError)
    data = read_settings(path, ConfigError)
    ScenarioConfig.from_dict(data, where=str(path))
    return data


def scenario_path(name: str) -> Path:
    """Path of a bundled scenario ("default" or "small") shipped as package data."""
    return find_settings_file(name, bundled_scenarios(), "scenario", ConfigError)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} = {value!r} is not an integer")
    if value < minimum:
        raise ConfigError(f"{name} = {value!r} is below {minimum}")
