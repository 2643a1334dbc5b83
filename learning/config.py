"""Training configuration: one dataclass, loaded from YAML, overridden by `--set key=value`.

`scenario.<field>=value` overrides a field of the delivery ScenarioConfig; every other key is a
field of TrainConfig. Unknown keys and ill-typed values raise LearnConfigError naming them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pbkit.errors import PbkitError
from pbkit.settings_file import parse_settings

# Learner variants evaluated in the report: MAASN-DA and its ablations (overrides of TrainConfig).
VARIANTS: dict[str, dict[str, Any]] = {
    "maasn-da": {},
    "maasn-noda": {"da": False},
    "maasn-mlp": {"actor": "mlp"},
    "maasn-vdn": {"mixer": "vdn"},
    "maasn-il": {"mixer": "none"},
}


class LearnConfigError(PbkitError, ValueError):
    """A training config file or override is malformed."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    scenario: dict[str, Any] = field(default_factory=dict)  # ScenarioConfig overrides
    # environment
    episode_slots: int = 20
    ema_alpha: float = 0.1
    # run length and schedule (all counts are real environment steps = slots)
    total_steps: int = 2000
    warmup_steps: int = 200
    updates_per_step: int = 2
    batch_size: int = 32
    buffer_size: int = 20000
    # MAASN
    actor: str = "asn"           # "asn" (action semantics) | "mlp" (ablation)
    mixer: str = "qmix"          # "qmix" | "vdn" | "none" (independent learners)
    hidden: int = 32
    mixer_embed: int = 32
    gamma: float = 0.5
    tau: float = 0.05            # soft target update rate
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    gumbel_tau: float = 1.0
    explore_eps: float = 0.1     # share of PB decisions sampled from the policy while acting
    pi_reg: float = 1e-3         # FACMAC's logit regulariser
    grad_clip: float = 10.0
    # data augmentation (echo state network)
    da: bool = True
    esn_reservoir: int = 200
    esn_spectral_radius: float = 0.9
    esn_leak: float = 0.5
    esn_ridge: float = 1e-3
    da_refit_every: int = 100
    da_rollout_every: int = 10
    da_branches: int = 32
    da_rollout_max: int = 3      # rollout length grows linearly from 1 to this over the run
    da_share_max: float = 0.5
    da_tolerance: float = 2.0
    da_buffer_size: int = 10000
    # evaluation and logging
    eval_every: int = 200        # must be a multiple of episode_slots (checkpoints at episode ends)
    eval_seeds: tuple[int, ...] = (1000, 1001, 1002)
    eval_slots: int = 20
    threads: int = 1

    def __post_init__(self) -> None:
        if self.actor not in ("asn", "mlp"):
            raise LearnConfigError(f"actor = {self.actor!r} is not 'asn' or 'mlp'")
        if self.mixer not in ("qmix", "vdn", "none"):
            raise LearnConfigError(f"mixer = {self.mixer!r} is not 'qmix', 'vdn' or 'none'")
        for name in ("episode_slots", "total_steps", "batch_size", "buffer_size", "eval_every",
                     "eval_slots", "hidden", "esn_reservoir", "threads", "da_refit_every",
                     "da_rollout_every", "da_branches", "da_rollout_max", "updates_per_step"):
            if getattr(self, name) < 1:
                raise LearnConfigError(f"{name} = {getattr(self, name)!r} must be at least 1")
        if self.total_steps % self.episode_slots:
            raise LearnConfigError(
                f"total_steps = {self.total_steps} is not a multiple of episode_slots = {self.episode_slots}")
        if self.eval_every % self.episode_slots:
            raise LearnConfigError(
                f"eval_every = {self.eval_every} is not a multiple of episode_slots = {self.episode_slots}")
        if not 0.0 < self.esn_spectral_radius < 1.0:
            raise LearnConfigError(f"esn_spectral_radius = {self.esn_spectral_radius} is not in (0, 1)")
        if not 0.0 <= self.da_share_max < 1.0:
            raise LearnConfigError(f"da_share_max = {self.da_share_max} is not in [0, 1)")
        if not 0.0 < self.gamma < 1.0:
            raise LearnConfigError(f"gamma = {self.gamma} is not in (0, 1)")
        object.__setattr__(self, "eval_seeds", tuple(int(s) for s in self.eval_seeds))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["eval_seeds"] = list(self.eval_seeds)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise LearnConfigError(f"{where}: unknown key {key!r}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise LearnConfigError(f"{where}: {exc}") from None

    def with_overrides(self, pairs: list[str] | tuple[str, ...]) -> "TrainConfig":
        """Apply `key=value` strings; values are parsed as YAML scalars and type-checked."""
        data = self.to_dict()
        types = {f.name: f.type for f in fields(self)}
        for pair in pairs:
            if "=" not in pair:
                raise LearnConfigError(f"--set {pair!r} is not key=value")
            key, text = pair.split("=", 1)
            key = key.strip()
            value = yaml.safe_load(text) if text.strip() else ""
            if key.startswith("scenario."):
                data["scenario"] = dict(data["scenario"]) | {key.split(".", 1)[1]: value}
                continue
            if key not in types:
                raise LearnConfigError(f"--set {key}: unknown key")
            data[key] = _coerce(key, types[key], value)
        return TrainConfig.from_dict(data, where="--set")


def _coerce(key: str, kind: str, value: Any) -> Any:
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }
    if kind in ok:
        if not ok[kind]:
            raise LearnConfigError(f"--set {key}={value!r}: expected {kind}")
        return float(value) if kind == "float" else value
    if kind.startswith("tuple"):
        if not isinstance(value, list):
            raise LearnConfigError(f"--set {key}={value!r}: expected a list like [1, 2]")
        return tuple(value)
    if kind.startswith("dict") and not isinstance(value, dict):
        raise LearnConfigError(f"--set {key}={value!r}: expected a mapping")
    return value


def load_config(path: str | Path | None) -> TrainConfig:
    """A YAML file, a bundled config name ("quick", "full"), or None for the defaults."""
    if path is None:
        return TrainConfig()
    p = Path(path)
    if not p.exists() and str(path) in ("quick", "full"):
        text = resources.files("learning.configs").joinpath(f"{path}.yaml").read_text()
        where = f"learning/configs/{path}.yaml"
    else:
        try:
            text = p.read_text()
        except OSError as exc:
            raise LearnConfigError(f"{p}: cannot read ({exc.strerror})") from None
        where = str(p)
    data = parse_settings(text, where, Path(where).suffix, LearnConfigError)
    return TrainConfig.from_dict(data, where=where)
