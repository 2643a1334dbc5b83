"""The confidence interval of a mean over seeds: one shape in every result file and table.

Every JSON document pbkit's simulator, learner and benchmarks write gives a mean over seeds as
`{"mean", "half_width", "lo", "hi", "n"}` (docs/result-formats.md): `lo = mean - half_width`,
`hi = mean + half_width`, `n` the number of samples. A paired difference (a policy's per-seed
values minus a reference's on the same seeds) is the same shape over the differences, with the
writer's extra keys (`vs`, `ratio`, ...) beside it.

The interval is Student's t at the given confidence (95 % unless said): half-width
`t(1 - (1 - c)/2, n - 1) * s / sqrt(n)`, s the sample standard deviation (ddof 1).

It lives in `delivery` (the lowest layer with scipy, the `sim` extra); `learning`, the
benchmarks and the examples import it from here, and pbkit's core needs no interval.

One sample (n = 1) has no estimable spread: its half-width, `lo` and `hi` are nan (written as
JSON `null`), never a zero width that would read as certainty. A table prints such an interval as
`1.234 (n=1)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

KEYS = ("mean", "half_width", "lo", "hi", "n")


def _num(x: float) -> float | None:
    """JSON has no nan or infinity: a non-finite number is written as null."""
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class Interval:
    """Mean of `n` samples with the half-width of its confidence interval; `lo`/`hi` the ends."""

    mean: float
    half_width: float
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.half_width

    @property
    def hi(self) -> float:
        return self.mean + self.half_width

    @classmethod
    def from_samples(cls, values: Iterable[float], confidence: float = 0.95) -> Interval:
        """The Student-t interval of the mean of `values` (nan half-width for one value).

        Raises ValueError for no values or a confidence outside (0, 1)."""
        import numpy as np
        from scipy import stats

        arr = np.asarray(list(values), dtype=float)
        if arr.size == 0:
            raise ValueError("interval of no samples")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence {confidence}: not in (0, 1)")
        if arr.size == 1:
            return cls(float(arr[0]), math.nan, 1)
        q = stats.t.ppf(0.5 + confidence / 2, arr.size - 1)
        return cls(float(arr.mean()), float(q * arr.std(ddof=1) / math.sqrt(arr.size)), int(arr.size))

    def to_json(self) -> dict[str, Any]:
        """`{"mean", "half_width", "lo", "hi", "n"}`; nan (n = 1) as null."""
        return {
            "mean": _num(self.mean),
            "half_width": _num(self.half_width),
            "lo": _num(self.lo),
            "hi": _num(self.hi),
            "n": self.n,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "interval") -> Interval:
        """The interval of a `to_json` mapping (other keys beside it are ignored; null reads as nan).

        Raises ValueError naming `where` when a key is missing or not a number, or lo/hi do not
        match mean -/+ half_width."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: not an interval object ({type(data).__name__})")
        missing = [k for k in KEYS if k not in data]
        if missing:
            raise ValueError(f"{where}: interval without {', '.join(missing)}")

        def num(key: str) -> float:
            v = data[key]
            if v is None:
                return math.nan
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{where}: interval {key} {v!r} is not a number")
            return float(v)

        n = data["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: interval n {n!r} is not a positive integer")
        out = cls(num("mean"), num("half_width"), n)
        for key, want in (("lo", out.lo), ("hi", out.hi)):
            got = num(key)
            if not (math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(got) and math.isnan(want))):
                raise ValueError(f"{where}: interval {key} {got} is not mean -/+ half_width ({want})")
        return out

    def format(self, spec: str = ".3f") -> str:
        """`mean ± half_width` (`mean (n=1)` for one sample), numbers in format `spec` (a sign
        flag such as `+.3f` applies to the mean only)."""
        if math.isnan(self.half_width):
            return f"{self.mean:{spec}} (n={self.n})"
        return f"{self.mean:{spec}} ± {self.half_width:{spec.replace('+', '')}}"

    def format_range(self, spec: str = ".3f") -> str:
        """`[lo, hi]` (`(n=1)` for one sample: no brackets, which rich would read as markup), numbers
        in format `spec`."""
        if math.isnan(self.half_width):
            return f"(n={self.n})"
        return f"[{self.lo:{spec}}, {self.hi:{spec}}]"
