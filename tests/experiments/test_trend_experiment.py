import json
import math

import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {
    "quantization_cuts_transfer", "gradient_domination", "diverse_ensemble_robust",
    "gradient_domination_faithful", "diverse_ensemble_robust_faithful",
}  # fmt: skip
FIGURES = {
    "trend_tm_heatmap.png",
    "trend_attack_success.png",
    "trend_candidate_ensembles.png",
    "trend_gradient_domination.png",
    "trend_domination_mechanism.png",
    "trend_design_mechanism.png",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("trend_tiny")
    result = execute("trend", scale="tiny", out_dir=out)
    return result, json.loads((out / "trend_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == FIGURES
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0
    assert (out / "result.json").exists()


def test_runs_are_consistent(tiny):
    result, runs, _ = tiny
    for run in runs:
        tm = run["tm"]
        assert all(tm[i][i] == 1.0 for i in range(len(tm)))
        dom = run["domination"]
        assert dom["agd_step_identical"]  # an invariant of A-GD, not a tuned outcome
        # A-GD success is the same with and without a scaled member
        assert len(set(dom["success"]["sign_avg"])) == 1
        assert len(run["candidates"]["TREND"]["members"]) == result.config["ensemble_size"]
        twin = run["domination_faithful"]
        assert twin["members"] == run["candidates"]["TREND"]["members"] and twin["steps"] == 2
        assert twin["agd_step_identical"] and len(set(twin["success"]["sign_avg"])) == 1
        design = run["design_faithful"]
        assert len(design["ensembles"]) == 10 and design["steps"] == 2  # C(5, 3) of the pool
        assert "+".join(design["members"]) in design["ensembles"]
        agree = run["sign_agreement"]
        assert all(agree[i][i] == 1.0 for i in range(len(agree)))  # a member agrees with itself
        assert all(agree[i][j] == agree[j][i] for i in range(len(agree)) for j in range(i))


def test_claims_consistent_with_metrics(tiny):
    result, runs, _ = tiny
    m = result.metrics
    claims = {c.id: c for c in result.claims}
    transfer = claims["quantization_cuts_transfer"]
    assert len(runs) < 3 and math.isnan(transfer.measured) and not transfer.holds
    margin = m["tm_fp_to_fp_init"] - max(m["tm_fp_to_q1"], m["tm_fp_to_q2"], m["tm_fp_to_lenet"])
    assert m["tm_min_margin"] == pytest.approx(margin)
    dom = claims["gradient_domination"]
    drop = m["domination_avg_success"] - m["domination_avg_success_scaled"]
    drop_agd = m["domination_sign_avg_success"] - m["domination_sign_avg_success_scaled"]
    rel = drop / m["domination_avg_success"] - drop_agd / m["domination_sign_avg_success"]
    assert dom.measured == pytest.approx(rel)
    assert dom.holds == (dom.measured >= 0.5)
    twin = claims["gradient_domination_faithful"]
    assert twin.settings == {"ensemble": "TREND-selected per seed", "steps": 2}
    assert twin.seeds == [0] and "mutual TM" in twin.diagnosis
    twin3 = claims["diverse_ensemble_robust_faithful"]
    assert twin3.settings == {"tm_eps": 0.2, "steps": 2} and "Spearman" in twin3.diagnosis
    assert twin3.measured == pytest.approx(
        m["design_faithful_trend_robust"]
        - max(m["design_faithful_best_member_robust"], m["design_faithful_random_robust"])
    )
    design = claims["diverse_ensemble_robust"]
    base = max(m["trend_best_member_robust"], m["trend_random_robust"])
    assert design.measured == pytest.approx(m["trend_robust"] - base)  # one seed


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("trend")
    with pytest.raises(ValueError, match="pool must contain"):
        exp.run(exp.make_config("tiny", pool=("fp", "q1", "q2")))
    with pytest.raises(ValueError, match="unknown"):
        exp.run(exp.make_config("tiny", pool=("fp", "fp_init", "lenet", "q1", "q2", "vit")))
    with pytest.raises(ValueError, match="ensemble_size"):
        exp.run(exp.make_config("tiny", ensemble_size=9))
    with pytest.raises(ValueError, match="eps needs"):
        exp.run(exp.make_config("tiny", eps=(0.1,)))
    with pytest.raises(ValueError, match="attack_eps"):
        exp.run(exp.make_config("tiny", attack_eps=0.0))
    with pytest.raises(ValueError, match="seeds"):
        exp.run(exp.make_config("tiny", seeds=()))
    with pytest.raises(ValueError, match=r"faithful_seeds \(3,\) must be among seeds"):
        exp.run(exp.make_config("tiny", faithful_seeds=(3,)))


def test_twins_are_opt_in_and_leave_the_reproduced_claims_alone(tiny, tmp_path):
    assert EXPERIMENTS.get("trend").make_config("small").faithful_seeds == ()
    result, _, _ = tiny
    without = execute("trend", scale="tiny", out_dir=tmp_path, faithful_seeds=())
    assert {c.id for c in without.claims} == {c for c in CLAIM_IDS if "faithful" not in c}
    assert set(without.figures) == FIGURES - {"trend_design_mechanism.png"}
    full = {c.id: c.measured for c in result.claims}
    for c in without.claims:
        assert c.measured == pytest.approx(full[c.id], nan_ok=True)
