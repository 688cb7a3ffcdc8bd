import json

import pytest

from netprism.experiments import load_experiments
from netprism.experiments.base import EXPERIMENTS, execute

load_experiments()

CLAIM_IDS = {"hier_shift_accuracy", "hier_distance"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("hierarchy_tiny")
    result = execute("hierarchy", scale="tiny", out_dir=out)
    return result, json.loads((out / "hierarchy_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, runs, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {"hierarchy_tree_mistakes.png", "hierarchy_accuracy.png"}
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0
    assert set(runs) == {str(s) for s in result.config["seeds"]}
    assert set(runs["0"]) == {"flat", "sequential", "combined", "bcnn"}


def test_claims_consistent_with_metrics(tiny):
    result, runs, _ = tiny
    m = result.metrics
    acc = next(c for c in result.claims if c.id == "hier_shift_accuracy")
    expected = min(m["sequential_unseen_acc_gain"], m["sequential_seen_acc_gain"] + 1.0)
    assert acc.measured == pytest.approx(expected)
    assert acc.holds == (expected >= 0.0)
    dist = next(c for c in result.claims if c.id == "hier_distance")
    assert dist.measured == pytest.approx(m["sequential_unseen_dist"])
    assert dist.target == pytest.approx(m["flat_unseen_dist"])
    assert dist.holds == (dist.measured < dist.target)
    assert result.baselines["flat"]["unseen_acc"] == pytest.approx(m["flat_unseen_acc"])
    # edge counts add up to the distance: every mistake crosses `distance` edges
    n_unseen = (
        result.config["n_super"]
        * result.config["n_mid"]
        * result.config["n_leaf"]
        * (result.config["n_subpops"] - result.config["n_seen"])
        * result.config["n_per_subpop"]
    )
    for per_method in runs.values():
        for run in per_method.values():
            assert sum(run["unseen_edges"].values()) == pytest.approx(run["unseen_dist"] * n_unseen)


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("hierarchy")
    with pytest.raises(ValueError, match="methods must be a subset"):
        exp.run(exp.make_config("tiny", methods=("greedy",)))
    with pytest.raises(ValueError, match="methods must be a subset"):
        exp.run(exp.make_config("tiny", methods=("bcnn",)))
    with pytest.raises(ValueError, match=r"n_seen must lie in .*\[1, 3\]"):
        exp.run(exp.make_config("tiny", n_seen=4))
    with pytest.raises(ValueError, match="seeds must name"):
        exp.run(exp.make_config("tiny", seeds=()))
    with pytest.raises(ValueError, match="unknown option"):
        exp.make_config("tiny", depth=4)
