"""The one registry of caching policies: every command (sim run, sim compare, sweep, sim headroom,
learn eval/report) resolves names here and lists them from here.

A name is a built-in policy (table below), one registered at run time (`register_policy`, e.g. a
learned checkpoint), a `pbkit.policies` entry point of an installed package, or a user's own
class given as `module:Class` (`--policy mypolicies:MostRecent`, the module importable from the
working directory or PYTHONPATH). Light on purpose (no numpy at import): the CLI lists names
without loading the simulator.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from delivery.errors import ConfigError

ENTRY_POINT_GROUP = "pbkit.policies"

# roles: "heuristic" (runs on what a real system observes), "baseline" (a heuristic for another
# delivery mode), "reference" (reads the future: not a policy a system could run), "bound".
ROLES = ("heuristic", "baseline", "reference", "bound")


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    target: str  # "module:attribute", imported when the policy is made
    role: str
    summary: str
    compare_default: bool = False  # in `sim compare`'s and the learner's default comparison set


BUILTIN: tuple[PolicyEntry, ...] = (
    PolicyEntry("random", "delivery.policies:RandomPolicy", "heuristic", "random order, first fit", True),
    PolicyEntry("popular", "delivery.policies:PopularPolicy", "heuristic", "network-wide most requested PBs", True),
    PolicyEntry("lfu", "delivery.policies:LFUPolicy", "heuristic", "each EN's most requested PBs (counts)", True),
    PolicyEntry("lru", "delivery.policies:LRUPolicy", "heuristic", "each EN's most recently requested PBs"),
    PolicyEntry("greedy", "delivery.policies:GreedyPolicy", "heuristic", "delay-proxy greedy on counts", True),
    PolicyEntry("greedy-ema", "delivery.policies:GreedyEMAPolicy", "heuristic", "greedy on recency-weighted counts"),
    PolicyEntry(
        "greedy-forecast", "delivery.policies:GreedyForecastPolicy", "heuristic", "greedy on a Holt trend forecast"
    ),
    PolicyEntry("optimal", "delivery.policies:OptimalPolicy", "heuristic", "exact proxy optimum (MILP) on counts"),
    PolicyEntry("coarse", "delivery.policies:CoarsePolicy", "baseline", "whole models, coarse delivery", True),
    PolicyEntry(
        "coarse-storage", "delivery.policies:CoarseStoragePolicy", "baseline", "whole-model storage, PB delivery"
    ),
    PolicyEntry(
        "coarse-delivery", "delivery.policies:CoarseDeliveryPolicy", "baseline", "deduplicated storage, model units"
    ),
    PolicyEntry("noncoop", "delivery.policies:NoncoopPolicy", "baseline", "no cooperation between ENs", True),
    PolicyEntry(
        "oracle", "delivery.references:OraclePolicy", "reference", "greedy on the true demand of slots t and t+1"
    ),
    PolicyEntry(
        "greedy-truepop",
        "delivery.references:TruePopularityGreedy",
        "reference",
        "greedy on the true popularity of the coming slot",
    ),
    PolicyEntry(
        "greedy-clairvoyant",
        "delivery.references:ClairvoyantGreedy",
        "reference",
        "greedy on the actual requests of the coming slot",
    ),
    PolicyEntry(
        "search", "delivery.references:SearchPolicy", "reference", "placement search simulated on the true future"
    ),
    PolicyEntry("fullcache", "delivery.references:FullCachePolicy", "bound", "every PB at every EN"),
)

_BUILTIN = {e.name: e for e in BUILTIN}
_REGISTERED: dict[str, Callable[..., Any]] = {}


def register_policy(name: str, factory: Callable[..., Any]) -> None:
    """Make `make_policy(name, **kwargs)` build `factory(**kwargs)` (e.g. a learned policy)."""
    _REGISTERED[name] = factory


def policy_names(role: str | None = None) -> list[str]:
    """Built-in names (of one role, if given), then names registered at run time."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    names = [e.name for e in BUILTIN if role is None or e.role == role]
    return names + ([n for n in _REGISTERED if n not in _BUILTIN] if role is None else [])


def compare_defaults() -> list[str]:
    """The default comparison set of `sim compare` and the learner's reports."""
    return [e.name for e in BUILTIN if e.compare_default]


def role_of(name: str) -> str | None:
    """The built-in role of a name (None for registered, entry-point and module:Class policies)."""
    entry = _BUILTIN.get(name)
    return entry.role if entry else None


def describe() -> str:
    """One line per built-in policy (for --help texts and `sim policies`)."""
    return "\n".join(f"{e.name:16s} {e.role:9s} {e.summary}" for e in BUILTIN)


def resolve(name: str) -> Callable[..., Any]:
    """The factory (class or callable) a policy name stands for.

    Raises ConfigError naming the policy when it is unknown or its module or class cannot be
    loaded."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        return _load_target(_BUILTIN[name].target, name)
    if ":" in name:
        return _load_target(name, name, user=True)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as exc:  # a broken plug-in: one line naming it
                raise ConfigError(f"policy {name!r}: entry point {ep.value} fails to load: {exc}") from None
    have = ", ".join(policy_names())
    raise ConfigError(f"unknown policy {name!r} (have: {have}; or module:Class, or a {ENTRY_POINT_GROUP} entry point)")


def _load_target(target: str, name: str, user: bool = False) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"policy {name!r} is not module:Class")
    if user and "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # `python -m` puts the working directory first; the pbkit script does not
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"policy {name!r}: cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(f"policy {name!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"policy {name!r}: module {module_name!r} has no class or function {attr!r}")
    return factory


def make_policy(name: str, **kwargs: Any) -> Any:
    """A fresh policy object for `name` (see `resolve`), checked to have `place`.

    Raises ConfigError for an unknown or unloadable name or an object without `place`."""
    factory = resolve(name)
    try:
        policy = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"policy {name!r} cannot be made: {exc}") from None
    if not callable(getattr(policy, "place", None)):
        raise ConfigError(f"policy {name!r}: {type(policy).__name__} has no place(view, rng) method")
    return policy
