import json

import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {"vrm_auroc", "vrm_overhead", "vrm_helps_baselines"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("vrm_ood_tiny")
    result = execute("vrm_ood", scale="tiny", out_dir=out)
    return result, json.loads((out / "ood_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, runs, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {"vrm_ood_histograms.png", "vrm_ood_roc.png"}
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0
    sets = {"gaussian", "uniform", *result.config["near_sets"]}
    metrics = runs["0"]["metrics"]
    for det in ("msp", "maxlogit", "energy", "odin", "mahalanobis", "mixup_msp", "vrm"):
        assert {s for s in sets if f"{det}/{s}" in metrics} == sets


def test_overhead_counts_are_exact_invariants(tiny):
    result, runs, _ = tiny
    claim = next(c for c in result.claims if c.id == "vrm_overhead")
    assert claim.measured == 0.0 and claim.holds  # counted, so exact at any scale
    over = runs["0"]["overhead"]
    width = result.config["hidden"][-1]
    assert over["vrm"]["extra_params"] == width + 1
    assert (over["odin"]["forward_passes"], over["odin"]["backward_passes"]) == (2, 1)
    assert over["mahalanobis"]["stored_floats"] == 5 * width + width * width
    assert all(row["seconds_per_1000"] > 0 for row in over.values())


def test_claims_consistent_with_metrics(tiny):
    result, _, _ = tiny
    m, cfg = result.metrics, result.config
    failed = sum(
        (m[f"vrm_{s}_auroc"] < cfg["auroc_target"])
        + (m[f"vrm_{s}_fpr95"] > cfg["fpr95_target"])
        + (m[f"vrm_{s}_auroc"] <= m[f"msp_{s}_auroc"])
        for s in ("gaussian", "uniform")
    )
    auroc = next(c for c in result.claims if c.id == "vrm_auroc")
    assert auroc.measured == failed and auroc.holds == (failed == 0)
    sets = ["gaussian", "uniform", *cfg["near_sets"]]
    change = min(
        sum(m[f"mixup_{d}_{s}_auroc"] - m[f"{d}_{s}_auroc"] for s in sets) / len(sets)
        for d in ("msp", "odin")
    )
    helps = next(c for c in result.claims if c.id == "vrm_helps_baselines")
    assert helps.measured == pytest.approx(change)
    assert helps.holds == (change >= -cfg["max_auroc_drop"])
    assert 0.0 <= m["accuracy_vrm"] <= 1.0 and "msp" in result.baselines


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("vrm_ood")
    with pytest.raises(ValueError, match="near_sets must be a subset"):
        exp.run(exp.make_config("tiny", near_sets=("svhn",)))
    with pytest.raises(ValueError, match="aux_target must be 'hard' or 'soft'"):
        exp.run(exp.make_config("tiny", aux_target="both"))
    with pytest.raises(ValueError, match="in_classes must name >= 2 distinct"):
        exp.run(exp.make_config("tiny", in_classes=(3, 3)))
    with pytest.raises(ValueError, match=r"auroc_target must lie in \[0, 1\]"):
        exp.run(exp.make_config("tiny", auroc_target=1.5))
    with pytest.raises(ValueError, match="model must be one of"):
        exp.run(exp.make_config("tiny", model="resnet18"))
    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        exp.run(exp.make_config("tiny", seeds=()))
