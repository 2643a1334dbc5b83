"""User-facing errors of the learning area."""

from pbkit.errors import PbkitError


class CheckpointError(PbkitError):
    """A checkpoint or run directory is missing, unreadable or does not match the run."""
