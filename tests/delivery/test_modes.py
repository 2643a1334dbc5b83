"""The four cooperative modes: coarse-storage and coarse-delivery each change one half of coarse.

Tiny library (conftest): A (1 MB) shared by m0 = {A, B (2 MB)} and m1 = {A, C (3 MB)}.
What must hold (docs/system-model.md, "Modes"):
- storage accounting: coarse-storage pays like coarse, coarse-delivery like fine;
- units: coarse-storage builds fine's units, coarse-delivery coarse's;
- at one placement of whole models, storage accounting changes nothing else: D(coarse-storage) =
  D(fine) and D(coarse) = D(coarse-delivery) exactly;
- so with each mode's best placement, D*(fine) <= D*(coarse-storage) and D*(coarse-delivery) <=
  D*(coarse) (whole-model storage only removes placements);
- NOT guaranteed: fine <= coarse-delivery (or <= coarse). A shared PB broadcast goes at the rate
  of the weakest user needing it, so a strong user can finish sooner with its own model unit.
"""

import itertools

import numpy as np
import pytest

from delivery.channels import SlotChannels
from delivery.config import ScenarioConfig
from delivery.errors import ConfigError
from delivery.modes import MODES, mode_of, places_models, sends_models, stores_models
from delivery.simulator import Simulator
from delivery.storage import serving_placement, storage_bytes

COOP = ("fine", "coarse-storage", "coarse-delivery", "coarse")
WHOLE = np.array([[True, True, True], [True, True, False]])  # EN 0: m0 and m1; EN 1: m0
REQ = np.array([0, 1])


def test_the_two_predicates_define_the_modes():
    assert [(stores_models(m), sends_models(m)) for m in COOP] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]
    assert places_models("coarse-delivery") and not places_models("fine") and not places_models("noncoop")
    assert set(MODES) == set(COOP) | {"noncoop"}
    with pytest.raises(ValueError, match="not one of"):
        mode_of("medium")
    with pytest.raises(ConfigError, match="mode = 'medium' is not one of"):
        ScenarioConfig(mode="medium")


def test_coarse_storage_pays_like_coarse_and_coarse_delivery_like_fine(tiny_library):
    member, sizes = tiny_library.membership(), tiny_library.pb_sizes()
    used = {m: storage_bytes(WHOLE, member, sizes, m).tolist() for m in COOP}
    assert used["fine"] == used["coarse-delivery"] == [6_000_000, 3_000_000]  # A once
    assert used["coarse"] == used["coarse-storage"] == [7_000_000, 3_000_000]  # A once per model
    # a stray PB (C alone at EN 1) is paid for under whole-model storage and serves nothing
    stray = np.array([[False, False, False], [False, False, True]])
    assert serving_placement(stray, member, "coarse-storage").sum() == 0
    assert serving_placement(stray, member, "coarse-delivery").sum() == 1


def _unit_key(u):
    return (u.size, tuple(u.users), tuple(u.candidates), tuple(u.holder_ready), u.pbs, u.source_ready)


@pytest.mark.parametrize("placement", [WHOLE, np.array([[True, True, False], [False, False, True]])])
def test_coarse_storage_sends_fine_units_and_coarse_delivery_coarse_units(tiny_library, tiny_sim, placement):
    units = {}
    for m in COOP:
        sim, _ = tiny_sim(tiny_library, m, cache_bytes=10_000_000)
        holder_ready, source_ready = sim._holders(placement)
        units[m] = [_unit_key(u) for u in sim._units(placement, holder_ready, REQ, source_ready)]
    assert len(units["fine"]) == 3 and len(units["coarse"]) == 2  # per PB / per requested model
    if placement is WHOLE:  # whole models, nothing stray: the units depend on the delivery unit only
        assert units["coarse-storage"] == units["fine"]
        assert units["coarse-delivery"] == units["coarse"]
        return
    # C alone at EN 1 is stray: under whole-model storage it serves nothing (neither sent from
    # EN 1 nor a migration source); under deduplicated storage it is an ordinary cached PB
    c_fine, c_cs = (next(k for k in units[m] if k[4] == (2,)) for m in ("fine", "coarse-storage"))
    assert c_fine[3][1] == 0.0 and c_cs[3][1] == np.inf
    m1_cd, m1_c = (next(k for k in units[m] if k[4] == (0, 2)) for m in ("coarse-delivery", "coarse"))
    assert m1_cd[5] == 0.0 and m1_c[5] == np.inf
    assert m1_cd[:5] == m1_c[:5]


def test_at_one_whole_model_placement_storage_accounting_changes_no_delay(small_library):
    # a whole-model placement drawn by coarse projection, the same seed (users, requests,
    # channels) in every mode: only the delivery unit can change the delay
    cfg = ScenarioConfig(n_users=8, beamformer="mrt", cache_fraction=0.3)
    delays = {}
    for m in COOP:
        sim = Simulator(cfg.replace(mode=m), small_library, np.random.default_rng(5))
        x = Simulator(cfg.replace(mode="coarse"), small_library, np.random.default_rng(5)).project(
            np.random.default_rng(1).uniform(size=(4, sim.n_pbs))
        )
        assert x.any()
        delays[m] = [sim.step(x).user_delay_s for _ in range(2)]
    for a, b in (("coarse-storage", "fine"), ("coarse", "coarse-delivery")):
        for da, db in zip(delays[a], delays[b]):
            np.testing.assert_allclose(da, db, rtol=1e-12)
    assert not all(np.allclose(a, b) for a, b in zip(delays["fine"], delays["coarse"]))


def _best(tiny_library, tiny_sim, mode, cache_bytes, channels=None):
    """Least mean delay of one slot over every placement feasible in `mode` (2 ENs x 3 PBs)."""
    best = np.inf
    for bits in itertools.product((False, True), repeat=6):
        x = np.array(bits).reshape(2, 3)
        sim, ch = tiny_sim(tiny_library, mode, cache_bytes=cache_bytes)
        if (storage_bytes(x, sim.membership, sim.pb_bytes, mode) > sim.capacity_bytes).any():
            continue
        best = min(best, sim.step(x, channels=channels or ch, requests=REQ).mean_delay_s)
    return best


@pytest.mark.parametrize("cache_bytes", [1_000_000, 3_500_000, 6_000_000])
def test_best_placement_orderings_that_are_theorems(tiny_library, tiny_sim, cache_bytes):
    best = {m: _best(tiny_library, tiny_sim, m, cache_bytes) for m in COOP}
    assert best["fine"] <= best["coarse-storage"] + 1e-12
    assert best["coarse-delivery"] <= best["coarse"] + 1e-12


def test_fine_can_lose_to_coarse_delivery_when_the_shared_broadcast_is_slow(tiny_library, tiny_sim):
    # user 1 at SNR 15 (4 Mbit/s), user 0 at 1023 (10 Mbit/s), everything cached everywhere.
    # fine: B to user 0 (1.6 s), A to both at 4 Mbit/s (2 s), C (6 s): users 3.6 and 9.6, mean 6.6.
    # coarse-delivery: m0 to user 0 (2.4 s), then m1 at 4 Mbit/s (8 s): 2.4 and 10.4, mean 6.4.
    sim, ch = tiny_sim(tiny_library)
    cfg = sim.config
    h = ch.h_true.copy()
    h[1, 1, 0] = np.sqrt(15 * cfg.noise_w / cfg.power_w)
    weak = SlotChannels(h_est=h, h_true=h)
    full = np.ones((2, 3), dtype=bool)
    mean = {}
    for m in ("fine", "coarse-delivery"):
        s, _ = tiny_sim(tiny_library, m, cache_bytes=10_000_000)
        mean[m] = s.step(full, channels=weak, requests=REQ).mean_delay_s
    assert mean["fine"] == pytest.approx(6.6)
    assert mean["coarse-delivery"] == pytest.approx(6.4)
