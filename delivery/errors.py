"""User-facing errors of the delivery simulator (one line, naming the value and the problem)."""

from __future__ import annotations

from pbkit.errors import PbkitError


class ConfigError(PbkitError, ValueError):
    """A scenario setting is unknown, of the wrong type or out of range."""


class CapacityError(PbkitError, ValueError):
    """A placement does not fit an edge node's cache, or has the wrong shape."""
