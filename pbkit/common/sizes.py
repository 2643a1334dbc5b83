"""Byte sizes as users write them: `64MiB`, `1.5GB`, `1e9`, `67108864`.

The one size parser of the command line (every size option goes through `size_option`) and of any
setting that is a number of bytes. Units follow the usual convention: `kB MB GB TB` (and `K M G T`
with a `B`, any case) are decimal powers of 1000, `KiB MiB GiB TiB` binary powers of 1024; a bare
number (integer, decimal or exponent form) is bytes. The result must be a whole number of bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pbkit.errors import PbkitError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
EXAMPLES = "e.g. 67108864, 64MiB, 1.5GB, 1e9"


class SizeError(PbkitError, ValueError):
    """A size that is not a whole, non-negative number of bytes with a known unit."""


def parse_size(text: str | int, what: str = "size", minimum: int = 0) -> int:
    """Bytes in `text` (`64MiB`, `1.5GB`, `1e9`, `123`); `what` names the option or setting in errors.

    Raises SizeError (one line naming `what` and the value) for an unknown unit, a malformed or
    negative number, a fraction of a byte, or a size below `minimum`.
    """
    if isinstance(text, bool):
        raise SizeError(f"{what} {str(text)!r}: not a size ({EXAMPLES})")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            hint = "; units are kB MB GB TB (1000) or KiB MiB GiB TiB (1024)" if match else ""
            raise SizeError(f"{what} {str(text)!r}: not a size ({EXAMPLES}){hint}")
        try:
            exact = Decimal(match.group(1)) * _UNITS[unit]
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise SizeError(f"{what} {str(text)!r}: not a size ({EXAMPLES})") from None
        if exact != exact.to_integral_value():
            raise SizeError(f"{what} {str(text)!r}: not a whole number of bytes ({exact} B)")
        value = int(exact)
    if value < minimum:
        raise SizeError(f"{what} {str(text)!r}: must be at least {minimum} bytes")
    return value


def format_size(nbytes: float) -> str:
    """Bytes in decimal units as the command line prints them: `812.3 MB`, `13.48 GB`."""
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(nbytes) >= factor:
            return f"{nbytes / factor:,.{2 if unit in ('TB', 'GB') else 1}f} {unit}"
    return f"{int(nbytes):,} B"


def parse_size_option(ctx: Any, param: Any, value: str | None) -> int | None:
    """typer/click callback of a size option: a bad size is a usage error (exit 2) naming the option."""
    if value is None:
        return None
    import typer

    name = param.opts[0] if getattr(param, "opts", None) else param.name
    try:
        return parse_size(value, name, minimum=1)
    except SizeError as exc:
        raise typer.BadParameter(str(exc)[len(name) + 1 :], ctx=ctx, param=param) from None  # '<value>': <problem>


def size_option(default: str | None, *flags: str, help: str) -> Any:
    """A command-line size option (metavar SIZE) parsed by `parse_size` while the command line is
    parsed, so a bad size is a usage error before any work. Annotate the parameter `Optional[str]`
    (what typer reads from the command line); the command receives int bytes (or None)."""
    import typer

    return typer.Option(default, *flags, metavar="SIZE", callback=parse_size_option, help=f"{help} ({EXAMPLES})")
