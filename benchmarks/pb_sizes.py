"""How a library's PB sizes spread, and what a cloud fetch of each costs: the figures behind the
learner's log-scale features (docs/learning.md §1, "Why logs").

Prints the size quantiles, the share of PBs under a tenth of the mean PB, the default
scenario's per-EN cache, and for the median and the largest PB how much of a cloud fetch
(t_c + 8 b / r_c, `learning.features.cloud_fetch_s`) is the link's latency.

    .venv/bin/python benchmarks/pb_sizes.py --library hub-catalogue
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="hub-catalogue")
    args = ap.parse_args(argv)

    from delivery.config import ScenarioConfig
    from delivery.experiment import simulator_rng
    from delivery.simulator import Simulator
    from learning.features import cloud_fetch_s
    from pbkit.library import resolve_library

    cfg = ScenarioConfig()
    view = Simulator(cfg, resolve_library(args.library), simulator_rng(0)).policy_view()
    sizes = np.asarray(view.pb_bytes, dtype=float)
    mean = sizes.mean()
    quantiles = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    print(f"{args.library}: {len(sizes)} PBs, mean {mean / 1e6:.3f} MB")
    print(
        "size quantiles (MB): "
        + ", ".join(f"{q:g}: {v / 1e6:.4g}" for q, v in zip(quantiles, np.quantile(sizes, quantiles)))
    )
    print(f"share of PBs under a tenth of the mean: {(sizes < mean / 10).mean():.1%}")
    print(f"cache per EN (default scenario): {np.asarray(view.capacity_bytes)[0] / 1e6:.1f} MB")
    for name, b in (("median", float(np.median(sizes))), ("largest", float(sizes.max()))):
        fetch = float(cloud_fetch_s(np.array([b]), cfg)[0])
        print(
            f"{name} PB ({b / 1e6:.4g} MB): cloud fetch {fetch:.4f} s, latency t_c {cfg.cloud_latency_s / fetch:.0%} of it"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
