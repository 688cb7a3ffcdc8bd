import dataclasses
import json

import pytest

from netprism.experiments import EXPERIMENTS, SCALES, load_experiments
from netprism.experiments.base import Claim, Result, execute

REQUIRED = {
    "name",
    "config",
    "metrics",
    "baselines",
    "claims",
    "figures",
    "seconds",
    "seed",
    "versions",
}
load_experiments()


@pytest.mark.parametrize("name", EXPERIMENTS.names())
def test_experiment_contract_at_tiny_scale(name, tmp_path):
    exp = EXPERIMENTS.get(name)
    assert dataclasses.is_dataclass(exp.config_cls) and exp.config_cls.__dataclass_params__.frozen
    assert set(exp.scales) <= set(SCALES)
    result = execute(name, scale="tiny", out_dir=tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert REQUIRED <= set(saved) and saved["name"] == name and saved["scale"] == "tiny"
    assert saved["claims"], "every experiment states at least one claim"
    for claim in saved["claims"]:
        assert {"id", "text", "measured", "target", "holds"} <= set(claim)
        assert isinstance(claim["holds"], bool)
    for fig in result.figures:
        assert (tmp_path / fig).stat().st_size > 0
    assert Result.load(tmp_path / "result.json").to_dict() == saved


def test_make_config_rejects_unknown_options_and_scales():
    exp = EXPERIMENTS.get("train")
    with pytest.raises(ValueError, match="unknown option.*'epoch'"):
        exp.make_config("small", epoch=3)
    with pytest.raises(ValueError, match="scale must be one of"):
        exp.make_config("huge")
    assert exp.make_config("tiny", epochs=7).epochs == 7


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_train_on_digits_small_scale_reaches_95_percent(model, tmp_path):
    """Acceptance: `netprism run train --dataset digits --model M --scale small` >= 95 %."""
    result = execute("train", scale="small", out_dir=tmp_path, model=model, dataset="digits")
    claim = result.claims[0]
    assert claim.measured >= 0.95 and claim.holds
    # The baselines were measured in the same run and are sane.
    assert 0.9 < result.baselines["logistic_regression"]["test_accuracy"] <= 1.0
    assert result.baselines["majority_class"]["test_accuracy"] < 0.2


@pytest.mark.parametrize(
    "op, measured, holds",
    [(">=", 1.0, True), (">=", 0.5, False), ("<=", 0.5, True), (">=", float("nan"), False)],
)
def test_claim_holds(op, measured, holds):
    assert Claim("c", "t", measured, 0.75, op).holds is holds


def test_result_load_rejects_incomplete_file(tmp_path):
    (tmp_path / "result.json").write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="missing required key"):
        Result.load(tmp_path / "result.json")
