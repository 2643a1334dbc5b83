"""Exception types. Every error a user can cause is a PbkitError whose message is one line
naming the file or value and the problem; the command line prints it and exits non-zero."""


class PbkitError(Exception):
    """Base of every user-facing pbkit error."""
