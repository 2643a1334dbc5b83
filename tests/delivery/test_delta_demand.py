"""A delta PB is useful only with its reference (issue 19, section 3): the library's demand
sets carry the reference, so the simulator and the policies see it without any change of
their own; a library that lists a delta PB without its reference cannot be built."""

from __future__ import annotations

import numpy as np
import pytest

from delivery.config import ScenarioConfig
from delivery.policies import make_policy
from delivery.simulator import Simulator
from pbkit.library import LibraryError, ModelEntry, PBEntry, PBLibrary


def _delta_library() -> PBLibrary:
    """base m0 = {R1, R2}; a full fine-tune m1 stored as deltas D1, D2 of R1, R2; m2 = {X}."""
    return PBLibrary(
        pbs=[
            PBEntry("R1", 3_000_000),
            PBEntry("R2", 2_000_000),
            PBEntry("D1", 1_000_000, references=("R1",)),
            PBEntry("D2", 700_000, references=("R2",)),
            PBEntry("X", 4_000_000),
        ],
        models=[
            ModelEntry("m0", ("R1", "R2")),
            ModelEntry("m1", ("D1", "D2", "R1", "R2"), base="m0"),
            ModelEntry("m2", ("X",)),
        ],
    )


def test_simulator_demand_of_a_delta_model_includes_its_references():
    lib = _delta_library()
    sim = Simulator(ScenarioConfig(n_users=4, beamformer="mrt"), lib, np.random.default_rng(0))
    col = lib.pb_index()
    assert sim.membership[1, col["R1"]] and sim.membership[1, col["R2"]]
    assert sim.model_bytes[1] == 1_000_000 + 700_000 + 3_000_000 + 2_000_000


@pytest.mark.parametrize("name", ["coarse", "popular", "greedy"])
def test_policies_never_cache_a_delta_without_counting_its_reference(name):
    lib = _delta_library()
    policy = make_policy(name)
    mode = getattr(policy, "mode", None) or "fine"
    sim = Simulator(ScenarioConfig(n_users=6, mode=mode, beamformer="mrt"), lib, np.random.default_rng(0))
    col = lib.pb_index()
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = policy.place(sim.policy_view(), rng)
        if mode == "coarse":  # a whole model: a cached delta comes with its reference
            for d, r in (("D1", "R1"), ("D2", "R2")):
                assert not x[:, col[d]].any() or x[x[:, col[d]], col[r]].all()
        sim.step(x)


def test_a_delta_pb_without_its_reference_is_refused():
    with pytest.raises(LibraryError, match="not its reference"):
        PBLibrary(
            pbs=[PBEntry("R", 10), PBEntry("D", 2, references=("R",))],
            models=[ModelEntry("m0", ("R",)), ModelEntry("m1", ("D",))],
        )
    with pytest.raises(LibraryError, match="not another PB"):
        PBLibrary(pbs=[PBEntry("D", 2, references=("Q",))], models=[ModelEntry("m1", ("D",))])
    with pytest.raises(LibraryError, match="loop"):
        PBLibrary(
            pbs=[PBEntry("A", 2, references=("B",)), PBEntry("B", 2, references=("A",))],
            models=[ModelEntry("m", ("A", "B"))],
        )


def test_library_file_round_trip_and_versions(tmp_path):
    from pbkit.library import load_library

    lib = _delta_library()
    d = lib.to_dict()
    assert d["version"] == 2 and d["sharing"]["delta_pbs"] == 2
    back = PBLibrary.from_dict(d)
    assert {p.id: p.references for p in back.pbs} == {p.id: p.references for p in lib.pbs}
    plain = PBLibrary(pbs=[PBEntry("A", 1)], models=[ModelEntry("m", ("A",))])
    assert plain.to_dict()["version"] == 1 and "delta_pbs" not in plain.to_dict()["sharing"]
    old = tmp_path / "v1.json"
    plain.save(old)
    assert load_library(old).pbs[0].references == ()
