"""Bit-for-bit check of the beamformers across a code change (for speed work that must not move a number).

    .venv/bin/python benchmarks/design_golden.py save /tmp/golden.npz     # before the change
    .venv/bin/python benchmarks/design_golden.py check /tmp/golden.npz    # after it: exit 1 if any differs

360 designs: 60 random problems (K 1-24 users, N 2/4/7 ENs, L 1/2/4 antennas, some with a silent
node or a zero budget) x the methods fast, robust-fast, robust (eps 0.1 and 0.3), fast-backoff and
mrt; compared are the beamformer w, min_snr and the iteration count, exactly.
"""

from __future__ import annotations

import sys

import numpy as np

from delivery.beamforming import design

METHODS = [("fast", 0.0), ("robust-fast", 0.1), ("robust", 0.1), ("robust", 0.3), ("fast-backoff", 0.2), ("mrt", 0.0)]


def designs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    out: dict[str, np.ndarray] = {}
    for trial in range(60):
        k, n, l = int(rng.integers(1, 25)), int(rng.choice([2, 4, 7])), int(rng.choice([1, 2, 4]))
        h = (rng.standard_normal((k, n, l)) + 1j * rng.standard_normal((k, n, l))) * 10 ** rng.uniform(
            -6, -4, size=(k, 1, 1)
        )
        if trial % 7 == 0:
            h[:, 0] = 0  # a silent node
        power = np.ones(n)
        if trial % 11 == 0:
            power[0] = 0.0
        for method, eps in METHODS:
            r = design(h, power, 1e-13, method, eps, rng=np.random.default_rng(trial))
            key = f"{trial}-{method}-{eps}"
            out[key + "-w"] = r.w
            out[key + "-v"] = np.array([r.min_snr, r.iterations])
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "check"):
        print(__doc__)
        return 2
    now = designs()
    if argv[0] == "save":
        np.savez(argv[1], **now)
        print(f"saved {len(now) // 2} designs to {argv[1]}")
        return 0
    ref = np.load(argv[1])
    bad = [k for k in now if not np.array_equal(now[k], ref[k])]
    print(f"designs compared: {len(now) // 2}, differing arrays: {len(bad)}" + (f" (first: {bad[0]})" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
