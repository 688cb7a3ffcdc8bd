import json
import math

import pytest

from netprism.core.metrics import spearman
from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute, mean_std

load_experiments()

CLAIM_IDS = {"gpm_vs_finetune", "gpm_best_baseline", "gpm_stability_plasticity"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpm_tiny")
    result = execute("gpm", scale="tiny", out_dir=out)
    return result, json.loads((out / "streams.json").read_text()), out


def test_tiny_run_states_the_three_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    for claim in result.claims:
        assert claim.text and isinstance(claim.holds, bool)
    assert set(result.figures) == {
        "accuracy_matrices.png",
        "gpm_memory.png",
        "acc_bwt_bars.png",
        "stability_plasticity.png",
    }
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0


def test_accuracy_matrices_are_plausible(tiny):
    result, streams, _ = tiny
    n_tasks = result.config["n_tasks"]
    for seed_runs in streams.values():
        for name, run in seed_runs["methods"].items():
            R = run["R"]
            assert len(R) == n_tasks and all(len(row) == n_tasks for row in R)
            assert all(0.0 <= v <= 1.0 for row in R for v in row)
            diag = [R[t][t] for t in range(n_tasks)]
            # tiny = 1 epoch at batch 32: each task is still learned well above chance (0.1)
            assert min(diag) > 0.25, (name, diag)
            assert math.isclose(run["la"], sum(diag) / n_tasks, rel_tol=1e-6)
        # GPM memory grows monotonically and never exceeds the fan-in
        memory, fan_in = seed_runs["gpm_memory"], seed_runs["fan_in"]
        assert set(fan_in) == {"fc1", "fc2", "head"} and len(memory) == n_tasks
        for layer, d in fan_in.items():
            sizes = [m[layer] for m in memory]
            assert sizes == sorted(sizes) and 0 < sizes[-1] <= d


def test_claim_margins_are_consistent_with_metrics(tiny):
    result, _, _ = tiny
    m = result.metrics
    cfg = result.config
    claim = next(c for c in result.claims if c.id == "gpm_vs_finetune")
    margins = (
        m["gpm_acc"] - m["finetune_acc"] - cfg["min_acc_gap"],
        m["gpm_bwt"] - cfg["min_gpm_bwt"],
        cfg["max_finetune_bwt"] - m["finetune_bwt"],
    )
    assert claim.measured == pytest.approx(min(margins))
    assert claim.holds == all(x >= 0 for x in margins)
    best = next(c for c in result.claims if c.id == "gpm_best_baseline")
    assert best.target == pytest.approx(max(m["ewc_acc"], m["agem_acc"]))


def test_spearman_and_mean_std():
    assert spearman([0.9, 0.95, 0.99], [-9.0, -5.0, -1.0]) == pytest.approx(1.0)
    assert spearman([0.9, 0.95, 0.99], [90.0, 80.0, 50.0]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    assert mean_std([2.0]) == (2.0, 0.0)


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("gpm")
    with pytest.raises(ValueError, match="threshold needs 1 or 3 values"):
        exp.run(exp.make_config("tiny", threshold=(0.9, 0.9)))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        exp.run(exp.make_config("tiny", sweep_thresholds=(0.9, 1.5)))
    with pytest.raises(ValueError, match="at least 2 tasks"):
        exp.run(exp.make_config("tiny", n_tasks=1))
