"""Trace replay (round trip and every error), the policy registry and a user's own policy."""

import json
import sys
import textwrap

import numpy as np
import pytest

from delivery.demand import TraceError, read_trace, write_trace
from delivery.errors import ConfigError
from delivery.registry import compare_defaults, make_policy, policy_names, resolve, role_of
from pbkit.cli import main

NAMES = ["m0", "m1", "m2"]


class Result:
    def __init__(self, code, out, err):
        self.exit_code, self.stdout, self.output = code, out, out + err


def cli(capsys, args):
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return Result(code, out, err)


def _write(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_read_trace_round_trip(tmp_path):
    table = np.array([[0, 2], [1, 1], [2, 0]])
    write_trace(tmp_path / "t.csv", table, NAMES)
    assert np.array_equal(read_trace(tmp_path / "t.csv", NAMES, 2), table)


@pytest.mark.parametrize(
    "text, message",
    [
        ("slot,user,model\n0,0,m0\n0,1,nope\n", "line 3: unknown model 'nope'"),
        ("slot,user,model\n0,0,m0\n0,2,m1\n", "line 3: user 2 is out of range 0..1"),
        ("slot,user,model\n0,0,m0\n0,1,m1\n2,0,m0\n2,1,m0\n", "slot 1 is missing"),
        ("slot,user,model\n0,0,m0\n0,1\n", "line 3: expected 3 fields"),
        ("slot,user,model\n0,x,m0\n", "line 2: slot and user must be integers"),
        ("slot,user,model\n0,0,m0\n0,0,m1\n", "line 3: slot 0 user 0 already given on line 2"),
        ("slot,user,model\n0,0,m0\n", "slot 0: no row for user 1"),
        ("user,slot,model\n0,0,m0\n", "line 1: the header must be"),
    ],
)
def test_read_trace_errors_name_the_row(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(TraceError) as err:
        read_trace(path, NAMES, 2)
    assert message in str(err.value) and str(path) in str(err.value)


def test_sim_run_replays_its_own_requests(tmp_path, capsys):
    """per_slot requests of a run, written as a trace and replayed: the same requests (and, as
    channels come from their own stream, the same delays)."""
    base = ["sim", "run", "--library", "synthetic", "--slots", "3", "--json", "--scenario", "small"]
    base += ["--set", "beamformer=mrt", "--set", "demand=stationary"]
    first = json.loads(cli(capsys, base).stdout)
    lines = ["slot,user,model"] + [
        f"{t},{u},{m}" for t, s in enumerate(first["per_slot"]) for u, m in enumerate(s["requests"])
    ]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    again = cli(capsys, [*base, "--requests", str(tmp_path / "r.csv")])
    second = json.loads(again.stdout)
    assert [s["requests"] for s in second["per_slot"]] == [s["requests"] for s in first["per_slot"]]
    assert second["config"]["demand"] == "trace"
    assert [s["mean_delay_s"] for s in second["per_slot"]] == pytest.approx(
        [s["mean_delay_s"] for s in first["per_slot"]]
    )
    bad = cli(capsys, [*base, "--requests", str(tmp_path / "r.csv"), "--slots", "4"])
    assert bad.exit_code == 2 and "the trace has 3 slots" in bad.output
    (tmp_path / "bad.csv").write_text("slot,user,model\n0,0,no-such-model\n")
    bad = cli(capsys, [*base, "--requests", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "line 2: unknown model 'no-such-model'" in bad.output


def test_registry_is_the_one_list():
    names = policy_names()
    assert {"greedy", "greedy-ema", "greedy-forecast", "lru", "lfu", "oracle", "search", "fullcache"} <= set(names)
    assert set(compare_defaults()) <= set(names)
    assert role_of("oracle") == "reference" and role_of("fullcache") == "bound" and role_of("lru") == "heuristic"
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        resolve("no_such_module_xyz:Policy")


USER_POLICY = '''
import numpy as np


class MostRecent:
    """Keep the PBs of the models requested last slot at each EN, biggest demand first."""

    name = "most-recent"

    def place(self, view, rng):
        out = np.zeros((len(view.capacity_bytes), len(view.pb_bytes)), dtype=bool)
        for n in range(len(out)):
            wanted = view.last_requests[n] @ view.membership  # requests needing each PB
            left = view.capacity_bytes[n]
            for j in np.argsort(-wanted, kind="stable"):
                if wanted[j] > 0 and view.pb_bytes[j] <= left:
                    out[n, j] = True
                    left -= view.pb_bytes[j]
        return out
'''


def test_user_policy_by_module_and_class(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_policies_i15.py").write_text(USER_POLICY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    res = cli(
        capsys,
        ["sim", "run", "--library", "synthetic", "--scenario", "small", "--set", "beamformer=mrt"]
        + ["--policy", "my_policies_i15:MostRecent", "--slots", "2", "--json"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["policy"] == "my_policies_i15:MostRecent"
    res = cli(
        capsys,
        ["sweep", "--library", "synthetic", "--scenario", "small", "--set", "beamformer=mrt"]
        + ["--policies", "my_policies_i15:MostRecent,greedy", "--seeds", "1", "--slots", "1"]
        + ["--out", str(tmp_path / "sw"), "--workers", "1"],
    )
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "sw" / "results.csv").read_text().splitlines()
    assert any(r.startswith("my_policies_i15:MostRecent") for r in rows[1:])
    bad = cli(capsys, ["sim", "run", "--library", "synthetic", "--policy", "my_policies_i15:Nope"])
    assert bad.exit_code == 2 and "has no class or function 'Nope'" in bad.output
    sys.modules.pop("my_policies_i15", None)


def test_headroom_smoke(tmp_path, capsys):
    res = cli(
        capsys,
        ["sim", "headroom", "--library", "synthetic", "--scenario", "small", "--set", "beamformer=mrt"]
        + ["--regimes", "default,stationary", "--policies", "greedy,lfu,oracle,fullcache"]
        + ["--seeds", "2", "--slots", "2", "--warmup", "1", "--out", str(tmp_path / "h"), "--json"],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["warmup"] == 1  # each seed's figure leaves slot 0 out
    table = result["table"]
    for regime in ("default", "stationary"):
        rows = table[regime]["policies"]
        assert table[regime]["best_heuristic"] in ("greedy", "lfu")
        # the bound: no placement within the real capacity is faster than every PB everywhere
        assert (
            rows["fullcache"]["mean_delay_s"]["mean"]
            <= min(rows["greedy"]["mean_delay_s"]["mean"], rows["lfu"]["mean_delay_s"]["mean"]) + 1e-9
        )
        assert rows[table[regime]["best_heuristic"]]["diff_vs_best_s"]["mean"] == 0.0
