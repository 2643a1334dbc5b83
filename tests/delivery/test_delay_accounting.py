"""Delay accounting on a hand-computed case (see tiny_sim in conftest for the set-up).

Fine mode, EN 0 caches {A, B}, EN 1 caches nothing, user 0 wants m0 = {A, B}, user 1 m1 = {A, C}.
Rates: B log2(1 + 1023) = 10 Mbit/s for user 0 alone, B log2(1 + 31) = 5 Mbit/s whenever
user 1 is in the group. Backhaul 1 Gbit/s, cloud 200 Mbit/s + 20 ms.
The scheduler serves user 0 first (its units A, B complete it in 3.2 s; user 1 needs 6.4 s),
in readiness order, so A's 8 ms migration hides behind B:
  B (user 0, EN 0 cached, 16 Mbit at 10 Mbit/s):                          [0.0, 1.6]
  A (users 0, 1; EN 0 cached, EN 1 migrates 8 Mbit / 1 Gbit/s = 8 ms): [1.6, 3.2]
  C (user 1, EN 1 from the cloud, ready 20 ms + 24/200 s = 0.14 s):        [3.2, 8.0]
"""

import numpy as np
import pytest

PLACEMENT = np.array([[True, True, False], [False, False, False]])
REQ = np.array([0, 1])


def test_fine_mode_hand_computed(tiny_library, tiny_sim):
    sim, ch = tiny_sim(tiny_library)
    r = sim.step(PLACEMENT, channels=ch, requests=REQ)
    assert r.user_delay_s == pytest.approx([3.2, 8.0])
    assert r.mean_delay_s == pytest.approx(5.6)
    assert r.breakdown["preparation"] == pytest.approx([0.0, 0.0])
    assert r.breakdown["airtime"] == pytest.approx([3.2, 6.4])
    assert r.breakdown["waiting"] == pytest.approx([0.0, 1.6], abs=1e-12)
    assert r.breakdown["retransmission"] == pytest.approx([0.0, 0.0])
    assert r.backhaul_bytes == 1_000_000 and r.cloud_bytes == 3_000_000
    assert r.hit_ratio_local == pytest.approx(3 / 7)
    assert r.hit_ratio_edge == pytest.approx(4 / 7)
    serving = [item.serving for item in sim.last_outcome.schedule]
    assert serving == [(0,), (0, 1), (1,)]  # CoMP for the shared PB, home ENs otherwise
    assert [item.unit for item in sim.last_outcome.schedule] == [1, 0, 2]
    # arrivals: user 0 gets B at 1.6 s and A at 3.2 s; user 1 gets A at 3.2 s and C at 8.0 s
    assert r.arrivals[0] == [(1, pytest.approx(1.6)), (0, pytest.approx(3.2))]
    assert r.arrivals[1] == [(0, pytest.approx(3.2)), (2, pytest.approx(8.0))]


def test_coarse_mode_hand_computed(tiny_library, tiny_sim):
    # whole models: m0 (3 MB) cached at EN 0 -> 24 Mbit at 10 Mbit/s = 2.4 s;
    # m1 (4 MB) from the cloud at EN 1 (ready 0.18 s) -> 32 Mbit at 5 Mbit/s after m0.
    sim, ch = tiny_sim(tiny_library, mode="coarse")
    r = sim.step(PLACEMENT, channels=ch, requests=REQ)
    assert r.user_delay_s == pytest.approx([2.4, 8.8])
    assert r.breakdown["waiting"] == pytest.approx([0.0, 2.4])
    assert r.cloud_bytes == 4_000_000 and r.backhaul_bytes == 0


def test_noncoop_hand_computed(tiny_library, tiny_sim):
    # Home ENs only, each cell on its own half of the band with that half's noise, both at the
    # same time: the SNRs double (1023 -> 2046, 31 -> 62) and the band halves.
    # EN 0: A then B from t = 0 -> user 0 done after 24 Mbit at 0.5e6 log2(2047) bit/s.
    # EN 1: A from the cloud (ready 0.02 + 8/200 = 0.06 s), then C (cloud queue: ready
    # 0.18 s, before A ends) -> user 1 done at 0.06 + 32 Mbit / (0.5e6 log2(63)).
    sim, ch = tiny_sim(tiny_library, mode="noncoop")
    r = sim.step(PLACEMENT, channels=ch, requests=REQ)
    rate0, rate1 = 0.5e6 * np.log2(2047.0), 0.5e6 * np.log2(63.0)
    assert r.user_delay_s == pytest.approx([24e6 / rate0, 0.06 + 32e6 / rate1])
    assert r.breakdown["airtime"] == pytest.approx([24e6 / rate0, 32e6 / rate1])
    assert r.breakdown["preparation"] == pytest.approx([0.0, 0.06])
    starts = sorted((item.channel, item.start_s) for item in sim.last_outcome.schedule)
    assert starts[0] == (0, 0.0) and starts[2] == (1, pytest.approx(0.06))  # concurrent cells
    assert r.backhaul_bytes == 0 and r.cloud_bytes == 4_000_000
    units = sim._units(PLACEMENT, np.where(PLACEMENT, 0.0, np.inf), REQ)
    for item in sim.last_outcome.schedule:
        users = units[item.unit].users
        assert set(item.serving) == {int(sim.topology.user_home[u]) for u in users}


@pytest.mark.parametrize("n_nodes", [2, 4])
def test_noncoop_noise_is_over_its_own_band(n_nodes):
    # One user alone in a cell: noncoop sends on B/N with the noise of B/N, so its rate is
    # (B/N) log2(1 + N snr_B), snr_B its SNR with the full band's noise (charging the full
    # band's noise, as before, gave (B/N) log2(1 + snr_B): 6 dB too little SNR at N = 4).
    from delivery.channels import SlotChannels
    from delivery.config import ScenarioConfig
    from delivery.simulator import Simulator
    from delivery.topology import Topology
    from pbkit.library import ModelEntry, PBEntry, PBLibrary

    lib = PBLibrary(pbs=[PBEntry("A", 1_000_000)], models=[ModelEntry("m0", ("A",))])
    cfg = ScenarioConfig(
        n_nodes=n_nodes,
        antennas=1,
        n_users=1,
        bandwidth_hz=1e6,
        csi_error=0.0,
        beamformer="mrt",
        mode="noncoop",
        cache_bytes=1_000_000,
        max_spectral_efficiency=64.0,
    )
    xy = np.array([[250.0 * n, 0.0] for n in range(n_nodes)])
    gain = np.full((1, n_nodes), -200.0)
    gain[0, 0] = -80.0
    topo = Topology(
        node_xy=xy,
        user_xy=np.array([[10.0, 0.0]]),
        distance_m=np.linalg.norm(xy - [10.0, 0.0], axis=1)[None, :],
        gain_db=gain,
        user_home=np.array([0]),
        neighbours=~np.eye(n_nodes, dtype=bool),
    )
    sim = Simulator(cfg, lib, np.random.default_rng(0), topology=topo)
    snr_full_band = 100.0
    h = np.zeros((1, n_nodes, 1), dtype=complex)
    h[0, 0, 0] = np.sqrt(snr_full_band * cfg.noise_w / cfg.power_w)
    r = sim.step(np.ones((n_nodes, 1), dtype=bool), channels=SlotChannels(h_est=h, h_true=h), requests=np.array([0]))
    band = 1e6 / n_nodes
    assert r.user_delay_s[0] == pytest.approx(8e6 / (band * np.log2(1.0 + n_nodes * snr_full_band)), rel=1e-9)


def test_placement_change_delays_next_slot(tiny_library, tiny_sim):
    # slot 0 starts from a free fill; in slot 1 EN 1 adds C, loaded from the cloud first
    sim, ch = tiny_sim(tiny_library, cache_bytes=3_000_000)
    sim.step(PLACEMENT, channels=ch, requests=REQ)
    changed = np.array([[True, True, False], [False, False, True]])
    r = sim.step(changed, channels=ch, requests=REQ)
    assert r.placement_change_bytes == 3_000_000
    # C is needed this slot, so its load is the on-demand fetch (usable after 0.14 s); it is
    # sent last (at 3.2 s), so the delays are unchanged and its bytes are counted once
    assert r.user_delay_s == pytest.approx([3.2, 8.0])
    assert r.cloud_bytes == 3_000_000
    assert r.hit_ratio_local == pytest.approx(6 / 7)


def test_breakdown_sums_to_delay_with_csi_error(small_library):
    from delivery.config import ScenarioConfig
    from delivery.simulator import Simulator

    cfg = ScenarioConfig(n_users=12, csi_error=0.3, beamformer="fast")
    sim = Simulator(cfg, small_library, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    retx = 0.0
    for _ in range(4):
        r = sim.step(sim.project(rng.uniform(size=(sim.n_nodes, sim.n_pbs))))
        total = sum(r.breakdown.values())
        assert total == pytest.approx(r.user_delay_s, rel=1e-9, abs=1e-9)
        assert all((v >= 0).all() for v in r.breakdown.values())
        assert r.delay_lower_bound_s <= r.mean_delay_s
        retx += r.breakdown["retransmission"].sum()
    assert retx > 0  # eps = 0.3 with a non-robust design: someone needs a retransmission


def test_robust_design_needs_no_retransmission(tiny_library):
    # the robust rate holds for every channel in the error set, which is where the truth lies
    from delivery.config import ScenarioConfig
    from delivery.simulator import Simulator

    cfg = ScenarioConfig(n_nodes=2, antennas=2, n_users=3, csi_error=0.3, beamformer="robust", cache_bytes=3_000_000)
    sim = Simulator(cfg, tiny_library, np.random.default_rng(4))
    r = sim.step(np.array([[True, True, False], [False, False, True]]))
    assert r.breakdown["retransmission"].sum() == 0.0
    assert r.delay_lower_bound_s <= r.mean_delay_s


@pytest.mark.parametrize("method", ["mrt", "fast-harq"])
def test_scheduler_times_units_by_the_plans_rule(small_library, method):
    # the scheduler's airtimes are DeliveryPlan.airtimes of plan_delivery (one rule, tested in
    # tests/beamforming/test_retransmission.py), each user's retransmission share its own
    from delivery.beamforming import design, plan_delivery
    from delivery.channels import draw_channels
    from delivery.config import ScenarioConfig
    from delivery.scheduler import DesignMemo, Links, deliver
    from delivery.simulator import Simulator

    cfg = ScenarioConfig(n_users=10, csi_error=0.3, beamformer=method)
    sim = Simulator(cfg, small_library, np.random.default_rng(1))
    ch = draw_channels(np.random.default_rng(7), sim.topology.gain_lin, cfg.antennas, cfg.csi_error)
    placement = sim.project(np.ones((sim.n_nodes, sim.n_pbs)))
    requests = np.arange(cfg.n_users) % sim.n_models
    units = sim._units(placement, np.where(placement, 0.0, np.inf), requests)
    memo = DesignMemo(design)  # deterministic designs (rng=None inside design: a fixed seed)
    out = deliver(
        units,
        cfg.n_users,
        ch.h_est,
        ch.h_true,
        sim.power_w,
        cfg.noise_w,
        cfg.bandwidth_hz,
        Links(1e9, 2e8, 0.02),
        memo,
        method,
        cfg.csi_error,
        None,
        np.zeros(4),
        np.zeros(4),
        max_se=cfg.max_spectral_efficiency,
    )
    retx = 0.0
    for item in out.schedule:
        u, idx = units[item.unit], list(item.serving)
        plan = plan_delivery(
            ch.h_est[u.users][:, idx],
            ch.h_true[u.users][:, idx],
            sim.power_w[idx],
            cfg.noise_w,
            method,
            cfg.csi_error,
            designer=memo,
        )
        bits = 8 * u.size
        assert (item.airtime_s, item.retx_s) == pytest.approx(plan.airtimes(bits, cfg.bandwidth_hz))
        extra = plan.user_extra(bits, cfg.bandwidth_hz)
        assert item.extra_of() == pytest.approx({int(k): float(x) for k, x in zip(u.users, extra) if x > 0})
        retx += item.retx_s
    assert retx > 0
    assert sum(out.breakdown.values()) == pytest.approx(out.user_delay_s, rel=1e-9)


def test_a_long_transmission_sees_a_fresh_fading_state_per_coherence_block(tiny_library, tiny_sim):
    # user 0 alone gets B (16 Mbit): SNR 1023 in the starting state (10 b/s/Hz), 255 in the
    # second (8 b/s/Hz). 1.6 s spans many 43.5 ms blocks, so both states carry equal time:
    # tau = 16 Mbit / mean(10, 8) Mbit/s. With a coherence time longer than the transmission it
    # sees the starting state only (1.6 s).
    from delivery.channels import SlotChannels

    sim, ch = tiny_sim(tiny_library)
    second = ch.h_est.copy()
    second[0, 0, 0] *= np.sqrt(255 / 1023)
    faded = SlotChannels(ch.h_est, ch.h_true, second[None], second[None])
    sim.step(PLACEMENT, channels=faded, requests=REQ)
    b_unit = next(item for item in sim.last_outcome.schedule if item.unit == 1)
    assert b_unit.airtime_s == pytest.approx(16e6 / 9e6)
    sim, ch = tiny_sim(tiny_library)
    sim.config = sim.config.replace(coherence_time_s=10.0)
    sim.step(PLACEMENT, channels=faded, requests=REQ)
    b_unit = next(item for item in sim.last_outcome.schedule if item.unit == 1)
    assert b_unit.airtime_s == pytest.approx(1.6)
