"""The ESN forecaster's skill against counts, per request regime (issue 16, part 2).

For each regime (a scenario override such as `requests=lifecycle`, or `stationary` for the
defaults) the request process runs for `--episodes` x `--slots` slots per seed (requests do not
depend on placements, so no slot is delivered: only the draws the simulator would make). The
learner's forecaster (`learning.augmentation.PopularityForecaster`, the trainer's own settings)
reads the learner's snapshots and is fitted on the older 80 % of slots; on the newest 20 % its
forecast of the next slot's request shares is scored by MSE against

- the realised shares, beside persistence (last slot's shares), the moving average (EMA) and the
  cumulative shares (LFU's counts): skill = 1 - MSE_esn / MSE_baseline;
- the true popularity of the slot (the process's own probabilities), the same way.

Skill > 0 against the best count baseline is the condition under which data augmentation can
help (synthetic requests drawn from the forecast carry information the counts do not).

    .venv/bin/python benchmarks/forecast_skill.py --library hub-catalogue --seeds 0,1,2 \\
        --regimes stationary,lifecycle,diurnal,spreading,mobility --out benchmarks/results/forecast_skill.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def regime_overrides(regime: str) -> dict:
    """ "field=value[,field=value]" -> those overrides; a word -> {"demand": word} (the
    scenario's request process by name; the other fields are the default scenario's)."""
    from pbkit.common.settings import parse_set_overrides

    if "=" in regime:
        from learning.config import LearnConfigError

        return parse_set_overrides(regime.split(","), LearnConfigError)
    return {"demand": regime}


def run_regime(library, scenario, seed: int, episodes: int, slots: int) -> dict[str, float]:
    from delivery.simulator import Simulator
    from delivery.topology import relocate
    from learning.augmentation import PopularityForecaster, series_inputs
    from learning.config import TrainConfig
    from learning.features import snapshot

    cfg = TrainConfig()
    sim = Simulator(scenario, library, np.random.default_rng(seed))
    n, i = sim.n_nodes, sim.n_models
    fc = PopularityForecaster(
        n, i, cfg.esn_reservoir, cfg.esn_spectral_radius, cfg.esn_leak, cfg.esn_ridge, cfg.da_share_max
    ).init(np.random.default_rng(seed + 1))
    rows = []  # (x, u, y, truth) per recorded slot, in time order
    for _ in range(episodes):
        counts = np.zeros((n, i), dtype=np.int64)
        last = np.zeros((n, i), dtype=np.int64)
        prev = None
        slot = 0

        def view(slot: int, last: np.ndarray, counts: np.ndarray) -> SimpleNamespace:
            return SimpleNamespace(
                slot=slot,
                placement=np.zeros((n, sim.n_pbs), bool),
                users_per_node=sim.topology.users_per_node,
                last_requests=last,
                request_counts=counts,
                config=scenario,
            )

        snap = snapshot(view(slot, last, counts), prev, cfg.ema_alpha)
        x = fc.start_episode(snap)
        for t in range(slots):
            truth = np.asarray(sim.requests.popularity(), dtype=np.float64)
            requests = sim.requests.draw(sim.topology.user_home)
            last = np.zeros((n, i), dtype=np.int64)
            np.add.at(last, (sim.topology.user_home, requests), 1)
            counts = counts + last
            slot += 1
            moved = sim.requests.positions()
            if moved is not None:  # mobility: users move between cells, as in Simulator.step
                sim.topology = relocate(sim.topology, moved)
            snap2 = snapshot(view(slot, last, counts), snap, cfg.ema_alpha)
            if t >= 2:
                rows.append((x.copy(), series_inputs(snap), np.asarray(snap2["last"]).reshape(-1), truth.reshape(-1)))
            x = fc.advance(x, snap2)
            snap = snap2
    cut = int(len(rows) * 0.8)
    stack = [np.array([r[k] for r in rows]) for k in range(4)]
    x, u, y, truth = stack
    flat = lambda a: a.reshape((-1,) + a.shape[2:])  # noqa: E731
    fc.esn.fit(flat(x[:cut]), flat(u[:cut]), flat(y[:cut])[:, None])
    pred = fc._normalise(fc.esn.predict(flat(x[cut:]), flat(u[cut:]))[:, 0].reshape(y[cut:].shape))
    baselines = {"persistence": u[cut:, :, 0], "ema": u[cut:, :, 1], "cumulative": u[cut:, :, 2]}
    out: dict[str, float] = {"slots_scored": int(len(rows) - cut)}
    for target_name, target in (("realised", y[cut:]), ("true", truth[cut:])):
        mse = float(np.mean((pred - target) ** 2))
        out[f"mse_esn_{target_name}"] = mse
        for name, b in baselines.items():
            mse_b = float(np.mean((b - target) ** 2))
            out[f"mse_{name}_{target_name}"] = mse_b
            out[f"skill_vs_{name}_{target_name}"] = 1.0 - mse / max(mse_b, 1e-15)
        best = min(out[f"mse_{name}_{target_name}"] for name in baselines)
        out[f"skill_vs_best_{target_name}"] = 1.0 - mse / max(best, 1e-15)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default="hub-catalogue")
    ap.add_argument(
        "--regimes",
        default="stationary,lifecycle,diurnal,spreading,mobility",
        help="comma-separated; see regime_overrides",
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--slots", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from delivery.config import ScenarioConfig
    from delivery.interval import Interval
    from pbkit.common.schema import versioned
    from pbkit.library import resolve_library

    library = resolve_library(args.library)
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict = versioned("bench.forecast-skill", {})
    result |= {
        "command": " ".join(["benchmarks/forecast_skill.py"] + (argv if argv is not None else sys.argv[1:])),
        "library": args.library,
        "regimes": {},
    }
    for regime in [r for r in args.regimes.split(";" if ";" in args.regimes else ",") if r]:
        try:
            scenario = ScenarioConfig.from_dict(ScenarioConfig().to_dict() | regime_overrides(regime))
        except Exception as exc:  # an unknown regime name: reported, not fatal for the others
            result["regimes"][regime] = {"error": str(exc)}
            print(f"{regime}: {exc}", file=sys.stderr)
            continue
        runs = [run_regime(library, scenario, s, args.episodes, args.slots) for s in seeds]
        summary = {}
        for key in runs[0]:
            summary[key] = Interval.from_samples([r[key] for r in runs]).to_json()
        result["regimes"][regime] = {"per_seed": runs, "summary": summary}
        s = summary
        print(
            f"{regime:>14}: skill vs persistence {s['skill_vs_persistence_realised']['mean']:+.3f}, "
            f"vs EMA {s['skill_vs_ema_realised']['mean']:+.3f}, vs cumulative "
            f"{s['skill_vs_cumulative_realised']['mean']:+.3f}, vs best {s['skill_vs_best_realised']['mean']:+.3f} "
            f"(realised); vs best {s['skill_vs_best_true']['mean']:+.3f} (true popularity)"
        )
    if args.out:
        from pbkit.common.fs import atomic_write_json

        atomic_write_json(args.out, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
