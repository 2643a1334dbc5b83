"""Exception types. Every error a user can cause is a PbkitError whose message is one line
naming the file or value and the problem; the command line prints it and exits non-zero."""


class PbkitError(Exception):
    """Base of every user-facing pbkit error.

    `exit_code` is what the command line exits with: 2 for bad input (the default: a file, value
    or name the user gave is wrong), 1 for a runtime failure the input did not cause (a subclass
    sets `exit_code = 1`: the store is corrupt, Ray is unreachable, a build failed)."""

    exit_code: int = 2
