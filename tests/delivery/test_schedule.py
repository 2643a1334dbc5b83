"""The transmission schedule: near the best order, more cache never slower, loads by need."""

import numpy as np
import pytest

from delivery.channels import draw_channels
from delivery.config import ScenarioConfig
from delivery.experiment import run_policy
from delivery.order_check import order_gap
from delivery.simulator import Simulator
from pbkit.library import ModelEntry, PBEntry, PBLibrary, synthetic_library


def _small_instances(count: int, seed: int, max_tries: int = 200):
    """`count` small slots; fails (instead of looping for ever) if `max_tries` draws do not give them."""
    rng = np.random.default_rng(seed)
    made = 0
    last_error: Exception | None = None
    for _ in range(max_tries):
        if made == count:
            return
        lib = synthetic_library(rng, families=1, models_per_family=3, base_pbs=3, own_pbs=1, mean_pb_bytes=4e6)
        cfg = ScenarioConfig(
            n_nodes=2,
            antennas=2,
            n_users=int(rng.integers(3, 6)),
            beamformer="mrt",
            cache_fraction=float(rng.choice([0.5, 1.0])),
            csi_error=0.0,
        )
        try:
            sim = Simulator(cfg, lib, np.random.default_rng(rng.integers(1 << 32)))
        except Exception as e:  # some random libraries do not fit the scenario; draw again
            last_error = e
            continue
        placement = sim.project(rng.uniform(size=(sim.n_nodes, sim.n_pbs)))
        requests = rng.integers(0, sim.n_models, cfg.n_users)
        channels = draw_channels(rng, sim.topology.gain_lin, cfg.antennas, cfg.csi_error)
        units = sim.membership[requests].any(axis=0).sum()
        if units > 6:
            continue
        made += 1
        yield sim, placement, requests, channels
    if made < count:
        pytest.fail(f"only {made} of {count} small instances in {max_tries} draws (last error: {last_error!r})")


def test_scheduler_finds_the_best_order_on_small_slots():
    # Exact CSI, so what the scheduler estimates is what happens: it should be optimal here
    # (bench_delay_model.py reports the gap over more instances and with CSI error).
    gaps = [order_gap(*inst, max_units=6) for inst in _small_instances(4, seed=5)]
    assert all(g.best_s <= g.scheduler_s + 1e-12 for g in gaps)
    assert max(g.gap for g in gaps) < 0.01, [(g.scheduler_s, g.best_s) for g in gaps]
    assert any(g.worst_s > g.best_s * 1.05 for g in gaps)  # the order matters on these slots


@pytest.fixture(scope="module")
def cache_sweep():
    lib = synthetic_library(
        np.random.default_rng(3), families=2, models_per_family=3, base_pbs=6, own_pbs=2, mean_pb_bytes=4e6
    )
    out = {}
    for policy in ("lfu", "greedy", "popular"):
        for frac in (0.3, 0.6, 1.0):
            # stationary demand: the regime this check was set in (under lifecycle demand greedy,
            # a heuristic on a proxy, is not monotone in the cache: 0.742 s at 0.3, 0.753 at 0.6)
            cfg = ScenarioConfig(
                n_users=10,
                beamformer="mrt",
                csi_error=0.0,
                cache_fraction=frac,
                change_cost="separate",
                demand="stationary",
            )
            out[policy, frac] = [run_policy(cfg, lib, policy, 4, seed) for seed in (0, 1)]
    return out


def _mean(runs):
    return float(np.mean([r.mean("mean_delay_s") for r in runs]))


def test_more_cache_never_slows_delivery(cache_sweep):
    for policy in ("lfu", "greedy", "popular"):
        means = [_mean(cache_sweep[policy, f]) for f in (0.3, 0.6, 1.0)]
        assert means[0] >= means[1] - 1e-9 and means[1] >= means[2] - 1e-9, (policy, means)
    everything = _mean(cache_sweep["lfu", 1.0])
    assert all(everything <= _mean(runs) + 1e-9 for runs in cache_sweep.values())


def test_lower_bound_bounds_every_slot(cache_sweep):
    for runs in cache_sweep.values():
        for run in runs:
            for slot in run.slots:
                assert slot["delay_lower_bound_s"] <= slot["mean_delay_s"] + 1e-12


def test_unneeded_cache_load_does_not_delay_anyone(tiny_sim):
    # D (4 MB, model m2) is never requested. Adding it to EN 1 in slot 1 costs 4 MB of cache
    # traffic but no delay: loads go by need, after the slot's transfers.
    lib = PBLibrary(
        pbs=[PBEntry("A", 1_000_000), PBEntry("B", 2_000_000), PBEntry("C", 3_000_000), PBEntry("D", 4_000_000)],
        models=[ModelEntry("m0", ("A", "B")), ModelEntry("m1", ("A", "C")), ModelEntry("m2", ("D",))],
    )
    req = np.array([0, 1])
    first = np.array([[True, True, False, False], [False, False, False, False]])
    delays = {}
    for name, second in (
        ("without", first),
        ("with D", np.array([[True, True, False, False], [False, False, False, True]])),
    ):
        sim, ch = tiny_sim(lib, cache_bytes=4_000_000)
        sim.step(first, channels=ch, requests=req)
        r = sim.step(second, channels=ch, requests=req)
        delays[name] = r.user_delay_s
        if name == "with D":
            assert r.placement_change_bytes == 4_000_000
            assert r.cloud_bytes == 3_000_000 + 4_000_000  # C on demand, D in the background
    assert delays["with D"] == pytest.approx(delays["without"])


def test_needed_new_block_is_usable_once_fetched(tiny_sim, tiny_library):
    # C newly placed at EN 1 and needed now: it is the on-demand fetch (counted once) and usable
    # from its arrival; with change_cost "separate" it is usable at once.
    req = np.array([0, 1])
    first = np.array([[True, True, False], [False, False, False]])
    second = np.array([[True, True, False], [False, False, True]])
    sim, ch = tiny_sim(tiny_library)
    sim.step(first, channels=ch, requests=req)
    r = sim.step(second, channels=ch, requests=req)
    c_unit = [s for s in sim.last_outcome.schedule if s.unit == 2][0]
    assert c_unit.fetch == {1: "cloud"} and c_unit.prep_s == pytest.approx(0.02 + 24 / 200)
    assert r.cloud_bytes == 3_000_000


def _choose_serving_by_full_enumeration(self, u, prep):
    """Timeline.choose_serving without its pruning bound: design every prefix, same rule."""
    import math

    r, ends = self.radio, {}
    ens = [p[2] for p in prep]
    for i in range(len(prep)):
        snr = self._design(u.users, tuple(sorted(ens[: i + 1]))).min_snr
        ends[i + 1] = max(self.free, prep[i][0]) + r.airtime(8 * u.size, snr)
    best_end, best_r = math.inf, 1
    for size in sorted(ends):
        if ends[size] < best_end * (1 - 1e-12):
            best_end, best_r = ends[size], size
    return best_r


@pytest.mark.parametrize("beamformer,eps", [("robust", 0.1), ("fast-backoff", 0.2), ("mrt", 0.1)])
def test_serving_set_pruning_gives_the_full_enumerations_choice(monkeypatch, beamformer, eps):
    """The bound that skips serving-set prefixes (single-user optimum, times (1 - eps)^2 for a
    worst-case SNR) never changes a slot: same delays as designing every prefix, fewer designs."""
    from delivery.scheduler import Timeline

    lib = synthetic_library(
        np.random.default_rng(4), families=2, models_per_family=3, base_pbs=4, own_pbs=2, mean_pb_bytes=4e6
    )
    cfg = ScenarioConfig(n_users=10, beamformer=beamformer, csi_error=eps, cache_fraction=0.3)
    pruned = [run_policy(cfg, lib, "greedy", 2, seed) for seed in (0, 1)]
    monkeypatch.setattr(Timeline, "choose_serving", _choose_serving_by_full_enumeration)
    full = [run_policy(cfg, lib, "greedy", 2, seed) for seed in (0, 1)]
    for a, b in zip(pruned, full):
        assert [s["mean_delay_s"] for s in a.slots] == [s["mean_delay_s"] for s in b.slots]
    calls = lambda runs: sum(s["solver_calls"] for r in runs for s in r.slots)  # noqa: E731
    assert calls(pruned) <= calls(full)


def test_batched_and_prefetched_designs_change_nothing():
    """The simulator's designer batches a group's fading states and designs ahead at the slot
    start (scheduler.DesignMemo.prefetch); a designer without `batch` designs one by one as
    asked. Same delays bit for bit, same designs counted (a design made ahead counts when used)."""
    import functools

    from delivery.beamforming import design
    from delivery.policies import make_policy

    lib = synthetic_library(
        np.random.default_rng(4), families=2, models_per_family=3, base_pbs=4, own_pbs=2, mean_pb_bytes=4e6
    )
    cfg = ScenarioConfig(n_users=10, cache_fraction=0.2)  # robust, 4 fading states
    runs = []
    for designer in (None, functools.partial(design)):
        sim = Simulator(cfg, lib, np.random.default_rng(7), designer=designer)
        policy, rng = make_policy("lfu"), np.random.default_rng(8)
        runs.append([sim.step(policy.place(sim.policy_view(), rng)) for _ in range(2)])
    batched, single = runs
    for a, b in zip(batched, single):
        assert np.array_equal(a.user_delay_s, b.user_delay_s)
        assert a.solver_calls == b.solver_calls
