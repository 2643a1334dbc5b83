"""The report protocol on a tiny scenario: training and evaluation runs as engine cells (reused
on a rerun), per-seed rows, paired differences, headroom references, forecast errors."""

import json

import numpy as np

from learning.report import ReportPlan, run_report

TINY = """
scenario: {beamformer: mrt, n_users: 8}
episode_slots: 20
total_steps: 40
warmup_steps: 20
bc_episodes: 1
actor_delay: 0
eval_every: 20
val_seeds: [1000]
eval_slots: 3
da_refit_every: 20
da_rollout_every: 5
"""


def test_report_records_every_run_and_reuses_them(tiny_library, tmp_path, result_document):
    (tmp_path / "tiny.yaml").write_text(TINY)
    plan = ReportPlan(
        train_config=str(tmp_path / "tiny.yaml"),
        train_seeds=(0,),
        variants=("maasn-da",),
        eval_seeds=(2000, 2001, 2002),
        eval_slots=2,
        capacities=(),
        csi_errors=(),
        robust_budget_s=0.0,
        optimum_seeds=(),
        scenario={"beamformer": "mrt", "n_users": 8},
        heuristics=("lfu", "greedy"),
    )
    lines: list[str] = []
    results = run_report(tiny_library, tmp_path / "r", plan, log=lines.append, progress=False)
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    policies = saved["policies"]
    assert {"lfu", "greedy", "maasn-da", "maasn-da/seed0", "greedy-truepop", "greedy-clairvoyant", "fullcache"} <= set(
        policies
    )
    assert all(len(p["per_seed"]) == 3 for p in policies.values()) and saved["eval_seeds"] == [2000, 2001, 2002]
    best = saved["best_heuristic"]
    assert saved["paired"]["maasn-da"]["vs"] == best
    # every byte at every EN from the start: no placement within the capacity is faster on any seed
    assert np.all(np.array(policies["fullcache"]["per_seed"]) <= np.array(policies[best]["per_seed"]) + 1e-9)
    targets = saved["targets"]
    assert result_document(saved, "learn-report") > len(policies)
    assert targets["maasn_da_paired_diff_s"] == {
        k: saved["paired"]["maasn-da"][k] for k in targets["maasn_da_paired_diff_s"]
    }
    assert set(targets["maasn_da_per_training_seed"]) == {"seed0"}
    assert "fullcache_ratio_to_best_heuristic" in targets
    forecast = targets["forecast"]["mean"]
    assert forecast["cumulative_mse_true"] < forecast["cumulative_mse"]  # sampling noise is gone
    # a rerun reuses every training and evaluation run recorded in the directory
    cells = (tmp_path / "r" / "evaluation" / "cells.jsonl").read_text()
    again = run_report(tiny_library, tmp_path / "r", plan, log=lines.append, progress=False)
    assert (tmp_path / "r" / "evaluation" / "cells.jsonl").read_text() == cells
    assert again["policies"] == results["policies"]
