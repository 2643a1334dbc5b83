"""Training configuration: one dataclass, loaded from YAML, overridden by `--set key=value`.

`scenario.<field>=value` overrides a field of the delivery ScenarioConfig; every other key is a
field of TrainConfig. Unknown keys and ill-typed values raise LearnConfigError naming them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from delivery.registry import compare_defaults
from pbkit.common.settings import apply_overrides, load_settings, load_typed, parse_set_overrides
from pbkit.errors import PbkitError

# Learner variants evaluated in the report: MAASN-DA and its ablations (overrides of TrainConfig).
# MAASN-DA is cold-started; "maasn-warm" (behaviour cloning of greedy first) is an ablation only.
VARIANTS: dict[str, dict[str, Any]] = {
    "maasn-da": {},
    "maasn-noda": {"da": False},
    "maasn-nomsg": {"messages": False},
    "maasn-noattn": {"critic": "sum"},
    "maasn-meancritic": {"critic": "mean"},
    "maasn-nocrn": {"reward_baseline": ""},
    "maasn-mlp": {"actor": "mlp"},
    "maasn-vdn": {"mixer": "vdn"},
    "maasn-il": {"mixer": "none"},
    "maasn-warm": {"bc_episodes": 3},
    "maasn-value": {"algorithm": "value", "keep_bias": 0.0},
    "maasn-hyst": {"score_scale": "spread"},
}

# Held-out evaluation seeds of `learn eval` and `learn report` (training validates on 1000+), and
# the heuristics every learner is compared with on them.
TEST_SEEDS: tuple[int, ...] = tuple(range(2000, 2010))
HEURISTICS: tuple[str, ...] = tuple(compare_defaults())  # delivery/registry.py: the one list


S = TypeVar("S")


class LearnConfigError(PbkitError, ValueError):
    """A training config file or override is malformed."""


class ScenarioSettings:
    """What a settings dataclass with a `scenario` field (ScenarioConfig overrides) inherits:
    `build` in the layers of `build_with_scenario` and its bundled files (`bundled()`: the YAML
    files of BUNDLED_DIR by name). A subclass sets SETTINGS_ERROR, SETTINGS_KIND, BUNDLED_DIR."""

    SETTINGS_ERROR: type[PbkitError]
    SETTINGS_KIND: str
    BUNDLED_DIR: Path

    @classmethod
    def bundled(cls) -> dict[str, Path]:
        """The settings files shipped as package data, by name (quick, full)."""
        return {p.stem: p for p in sorted(cls.BUNDLED_DIR.glob("*.yaml"))}

    @classmethod
    def build(
        cls: type[S],
        source: str | Path | None = None,
        overrides: list[str] | tuple[str, ...] = (),
        scenario: str | Path | None = None,
        shortcuts: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        where: str = "--set",
    ) -> S:
        """The defaults (= `full`, `source` None) or a settings file or bundled name; then the
        keys the `scenario` file or bundled scenario writes (`--scenario`); then `shortcuts`
        ((option, `field=value`) items) and `key=value` overrides (`scenario.<field>=v` into the
        scenario): `build_with_scenario`. Raises SETTINGS_ERROR (delivery's ConfigError for a
        bad scenario file)."""
        return build_with_scenario(
            cls,
            source,
            overrides,
            scenario,
            error=cls.SETTINGS_ERROR,  # type: ignore[attr-defined]
            kind=cls.SETTINGS_KIND,  # type: ignore[attr-defined]
            bundled=cls.bundled(),  # type: ignore[attr-defined]
            where=where,
            shortcuts=shortcuts,
        )


@dataclass(frozen=True)
class TrainConfig(ScenarioSettings):
    SETTINGS_ERROR = LearnConfigError  # not fields: no annotation
    SETTINGS_KIND = "training config"
    BUNDLED_DIR = Path(__file__).parent / "configs"  # quick, full, smoke

    seed: int = 0
    # ScenarioConfig overrides of the training scenario. MRT: a slot of the default scenario costs
    # ~0.15 s with it against ~0.5 s with the default robust beamformer, and the agents learn
    # placements, which the beamformer does not change (docs/learning.md §4 measures it).
    scenario: dict[str, Any] = field(default_factory=lambda: {"beamformer": "mrt"})
    # environment
    episode_slots: int = 20
    ema_alpha: float = 0.3  # recent request shares: ~3-slot memory (cumulative counts are a feature too)
    # run length and schedule (all counts are real environment steps = slots)
    total_steps: int = 1200
    warmup_steps: int = 200  # real slots before the first RL update (includes the BC episodes)
    updates_per_step: int = 1
    # real slots per round of updates: an update costs ~1 s of CPU on the shipped catalogue
    # (2 286 PBs x 4 ENs per sample), 3-5x a slot, so updating every slot would set the run's time
    update_every: int = 2
    batch_size: int = 8  # samples; each carries N x J PB rows (9 144 on the shipped hub-catalogue)
    buffer_size: int = 20000
    # MAASN
    # "facmac": decentralised actors trained through the centralised critic; "value": the agents'
    # per-PB action utilities are Q_n's terms (QMIX-style value learning, each EN fills its cache
    # by utility margin per byte; the "maasn-value" variant, docs/results.md 2.0 measures both)
    algorithm: str = "facmac"
    actor: str = "asn"  # "asn" (action semantics) | "mlp" (ablation)
    mixer: str = "qmix"  # "qmix" | "vdn" | "none" (independent learners)
    critic: str = "attention"  # "attention" | "sum" (no attention) | "mean" (per-PB utilities averaged)
    messages: bool = True  # neighbours' features in the observation (False: the "no messages" ablation)
    hidden: int = 32
    mixer_embed: int = 32
    gamma: float = 0.95  # a load pays off from the slot after it is made: far-sighted returns
    n_step: int = 3  # multi-step returns (replay.NStep)
    # common random numbers: the reward is (this policy's delay on the same slot replayed - the
    # agents' delay) / d_ref (learning.baseline); "" for the plain -delay / d_ref
    reward_baseline: str = "greedy"
    tau: float = 0.01  # soft target update rate
    lr_actor: float = 3e-4
    lr_critic: float = 1e-3
    lr_final: float = 0.1  # learning rates decay linearly to this fraction at the end
    gumbel_tau: float = 1.0
    explore_eps: float = 0.05  # share of PB decisions sampled from the policy while acting
    # value learner: Gaussian noise on each EN's per-byte scores while acting, in units of their
    # spread at that EN (perturbs the ranking near the cache's edge, where the choice is close)
    explore_noise: float = 0.3
    pi_reg: float = 1e-3  # FACMAC's logit regulariser
    grad_clip: float = 10.0
    # added to the score of PBs already cached (hysteresis against churn); 0 for the value learner,
    # whose utilities see the placement and so price a reload themselves
    keep_bias: float = 0.5
    # "spread": the facmac actor's scores are divided by their spread at each EN before the fill,
    # so keep_bias and the asks count in units of that spread (a random actor's margins spread
    # over several logits, and a fixed 0.5 then hardly holds anything); "logit": as they come
    score_scale: str = "logit"
    # cold start by default; bc_episodes > 0 is the "maasn-warm" ablation: that many real
    # episodes placed by greedy, imitated once (no imitation term afterwards), kept in the replay
    bc_episodes: int = 0
    bc_epochs: int = 40
    bc_lr: float = 1e-3
    actor_delay: int = 100  # real slots of critic-only updates after the warm-up
    # data augmentation: ESN popularity forecasts drive the real simulator
    da: bool = True
    esn_reservoir: int = 40
    esn_spectral_radius: float = 0.9
    esn_leak: float = 0.5
    esn_ridge: float = 1e-2
    da_refit_every: int = 100
    da_rollout_every: int = 10  # real slots between synthetic branches
    da_rollout_len: int = 5  # synthetic slots per branch
    da_share_max: float = 0.5
    da_skill_full: float = 0.1  # forecast skill at which the synthetic share reaches da_share_max
    da_buffer_size: int = 10000
    forecast_input: bool = True  # the ESN's forecast of the next slot's shares as an input feature
    # validation (best-checkpoint choice) and logging
    eval_every: int = 200  # must be a multiple of episode_slots (checkpoints at episode ends)
    val_seeds: tuple[int, ...] = (1000, 1001, 1002)  # disjoint from the test seeds (2000+)
    eval_slots: int = 20
    threads: int = 1

    def __post_init__(self) -> None:
        if self.score_scale not in ("logit", "spread"):
            raise LearnConfigError(f"score_scale = {self.score_scale!r} is not 'logit' or 'spread'")
        if self.algorithm not in ("value", "facmac"):
            raise LearnConfigError(f"algorithm = {self.algorithm!r} is not 'value' or 'facmac'")
        if self.actor not in ("asn", "mlp"):
            raise LearnConfigError(f"actor = {self.actor!r} is not 'asn' or 'mlp'")
        if self.critic not in ("attention", "sum", "mean"):
            raise LearnConfigError(f"critic = {self.critic!r} is not 'attention', 'sum' or 'mean'")
        if self.mixer not in ("qmix", "vdn", "none"):
            raise LearnConfigError(f"mixer = {self.mixer!r} is not 'qmix', 'vdn' or 'none'")
        for name in (
            "episode_slots",
            "total_steps",
            "batch_size",
            "buffer_size",
            "eval_every",
            "eval_slots",
            "hidden",
            "esn_reservoir",
            "threads",
            "da_refit_every",
            "da_rollout_every",
            "da_rollout_len",
            "updates_per_step",
            "update_every",
            "bc_epochs",
            "n_step",
        ):
            if getattr(self, name) < 1:
                raise LearnConfigError(f"{name} = {getattr(self, name)!r} must be at least 1")
        for name in ("bc_episodes", "actor_delay", "warmup_steps"):
            if getattr(self, name) < 0:
                raise LearnConfigError(f"{name} = {getattr(self, name)!r} must not be negative")
        if self.total_steps % self.episode_slots:
            raise LearnConfigError(
                f"total_steps = {self.total_steps} is not a multiple of episode_slots = {self.episode_slots}"
            )
        if self.eval_every % self.episode_slots:
            raise LearnConfigError(
                f"eval_every = {self.eval_every} is not a multiple of episode_slots = {self.episode_slots}"
            )
        if self.bc_episodes * self.episode_slots > self.total_steps:
            raise LearnConfigError(f"bc_episodes = {self.bc_episodes} episodes exceed total_steps = {self.total_steps}")
        if not 0.0 < self.esn_spectral_radius < 1.0:
            raise LearnConfigError(f"esn_spectral_radius = {self.esn_spectral_radius} is not in (0, 1)")
        if not 0.0 <= self.da_share_max < 1.0:
            raise LearnConfigError(f"da_share_max = {self.da_share_max} is not in [0, 1)")
        if self.da_skill_full <= 0.0:
            raise LearnConfigError(f"da_skill_full = {self.da_skill_full} must be positive")
        if not 0.0 < self.gamma < 1.0:
            raise LearnConfigError(f"gamma = {self.gamma} is not in (0, 1)")
        if not 0.0 < self.lr_final <= 1.0:
            raise LearnConfigError(f"lr_final = {self.lr_final} is not in (0, 1]")
        if not self.val_seeds:
            raise LearnConfigError("val_seeds is empty")
        # numpy's SeedSequence refuses negative seeds: say so here, not in a traceback mid-run
        for name, seeds in (("seed", (self.seed,)), ("val_seeds", self.val_seeds)):
            if any(s < 0 for s in seeds):
                raise LearnConfigError(f"{name} = {min(seeds)}: seeds are non-negative integers")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["val_seeds"] = list(self.val_seeds)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "TrainConfig":
        """Every key known and every value of its field's type (raises LearnConfigError)."""
        return load_typed(cls, data, where, LearnConfigError)

    def with_overrides(self, pairs: list[str] | tuple[str, ...]) -> "TrainConfig":
        """Apply `key=value` strings (`scenario.<field>=v` for the scenario); raises LearnConfigError."""
        values = parse_set_overrides(pairs, LearnConfigError)
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), values, LearnConfigError), where="--set")


def build_with_scenario(
    cls: type[S],
    source: str | Path | None,
    overrides: list[str] | tuple[str, ...],
    scenario: str | Path | None,
    *,
    error: type[PbkitError],
    kind: str,
    bundled: dict[str, Path],
    where: str = "--set",
    shortcuts: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
) -> S:
    """A settings type with a `scenario` field (ScenarioConfig overrides) in three layers, later
    ones winning: its defaults (`source` None) or a settings file or `bundled` name, with that
    file's `scenario`; then the keys the `scenario` file or bundled scenario name (`--scenario`)
    writes; then `key=value` overrides (`scenario.<field>=v` into the scenario; a bare scenario
    key is refused with a hint). `shortcuts` are (option, `field=value`) items of a command's
    shortcut options, applied before the overrides, each error naming its option.
    Raises `error` (delivery's ConfigError for a bad scenario file)."""
    from delivery.config import scenario_keys

    check_scenario_overrides(overrides, cls, error)
    settings: Any = load_settings(cls, source, error=error, kind=kind, bundled=bundled)
    if scenario is not None:
        settings = dataclasses.replace(settings, scenario=dict(settings.scenario) | scenario_keys(scenario))
    for option, item in shortcuts:
        settings = load_settings(cls, None, error=error, kind=kind, overrides=[item], where=option, base=settings)
    if not overrides:
        return settings
    return load_settings(cls, None, error=error, kind=kind, overrides=overrides, where=where, base=settings)


def settings_from_options(
    cls: type[S],
    *,
    quick: bool,
    config: str | None,
    scenario: str | None,
    overrides: list[str],
    shortcuts: dict[str, tuple[str, str | None]],
    old_meaning: tuple[Callable[[str], bool], str] | None = None,
) -> S:
    """A command's own settings (a ScenarioSettings type) from its options: `--config` (`--quick`
    is `--config quick`), `--scenario`, each shortcut option given ({option: (field, value)},
    applied as `--set field=value` naming the option in errors), then `--set`. `old_meaning`
    (is_old, hint): when `--config` fails to load and `is_old(config)` says it names what
    `--config` used to mean, the error is `<config>: <hint>`. Raises cls.SETTINGS_ERROR."""
    error = cls.SETTINGS_ERROR  # type: ignore[attr-defined]
    if quick and config is not None:
        raise error("--quick is --config quick: give one of them")
    items = [(option, f"{key}={value}") for option, (key, value) in shortcuts.items() if value is not None]
    try:
        return cls.build("quick" if quick else config, overrides, scenario=scenario, shortcuts=items)  # type: ignore[attr-defined]
    except error:
        if config is not None and old_meaning is not None and old_meaning[0](config):
            raise error(f"{config}: {old_meaning[1]}") from None
        raise


def check_scenario_overrides(items: list[str] | tuple[str, ...], cls: type, error: type[PbkitError]) -> None:
    """Refuse a `--set KEY=v` whose KEY is no field of the settings type `cls` but a scenario
    setting, saying to write `scenario.KEY=v` (a command's `--set` goes into its own settings).
    Raises `error`."""
    from delivery.config import ScenarioConfig

    own = {f.name for f in dataclasses.fields(cls)}
    scenario = {f.name for f in dataclasses.fields(ScenarioConfig)}
    for item in items:
        key = item.split("=", 1)[0].strip()
        if key not in own and key in scenario:
            raise error(f"--set {key}: not a {cls.__name__} setting; the scenario's is --set scenario.{key}=...")


def bundled_configs() -> dict[str, Path]:
    """The training configs shipped as package data, by name (quick, full, smoke)."""
    return TrainConfig.bundled()


def load_config(path: str | Path | None) -> TrainConfig:
    """A settings file, a bundled config name ("quick", "full", "smoke"), or None for the defaults."""
    return TrainConfig.build(path)
