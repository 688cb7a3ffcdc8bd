import json

import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {
    "encoder_fidelity",
    "encoder_fidelity_rising",
    "decode_exact",
    "comm_ratio",
    "comm_accuracy_gap",
    "privacy",
    "bad_client_survived",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tofu_tiny")
    result = execute("tofu", scale="tiny", out_dir=out)
    return result, json.loads((out / "tofu_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {
        "tofu_accuracy_vs_bytes.png",
        "tofu_proxies.png",
        "tofu_reconstructions.png",
        "tofu_fidelity.png",
    }
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0


def test_invariant_claims_hold_and_bytes_match_the_formula(tiny):
    result, runs, _ = tiny
    claims = {c.id: c for c in result.claims}
    assert claims["decode_exact"].holds  # an invariant, not a tuned outcome
    cfg = result.config
    per_seed = runs[str(cfg["seeds"][0])]
    n_params = per_seed["n_params"]
    tofu_msg = 4 * (cfg["n_proxy"] * (64 + 10 + 1) + 1)
    rounds = per_seed["rounds"]
    assert rounds["fedavg"]["uplink_bytes"] == [cfg["n_clients"] * 4 * n_params] * cfg["rounds"]
    assert rounds["tofu"]["uplink_bytes"] == [cfg["n_clients"] * tofu_msg] * cfg["rounds"]
    expected = (
        cfg["rounds"]
        * n_params
        / ((cfg["rounds"] - cfg["full_rounds"]) * tofu_msg / 4 + cfg["full_rounds"] * n_params)
    )
    assert claims["comm_ratio"].measured == pytest.approx(expected)
    malformed = str(cfg["n_clients"] - 2)
    assert all(malformed in r for r in rounds["bad_robust"]["rejected"])


def test_claims_consistent_with_metrics(tiny):
    result, _, _ = tiny
    m, claims = result.metrics, {c.id: c for c in result.claims}
    assert claims["encoder_fidelity"].measured == pytest.approx(m["encoder_cosine"])
    gap = m["hybrid_acc"] - m["fedavg_acc"]
    assert claims["comm_accuracy_gap"].measured == pytest.approx(gap)
    assert claims["comm_accuracy_gap"].holds == (gap >= -result.config["max_acc_gap"])
    b = result.config["attack_batch"]
    ratio = m[f"b{b}_ig_tofu_mse"] / m[f"b{b}_ig_real_mse"]
    assert claims["privacy"].measured == pytest.approx(ratio)
    assert claims["bad_client_survived"].measured == pytest.approx(m["bad_robust_gap"])


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("tofu")
    with pytest.raises(ValueError, match="full_rounds <= rounds"):
        exp.run(exp.make_config("tiny", full_rounds=9))
    with pytest.raises(ValueError, match="aggregator must be one of"):
        exp.run(exp.make_config("tiny", aggregator="krum"))
    with pytest.raises(ValueError, match="n_clients must be >= 3"):
        exp.run(exp.make_config("tiny", n_clients=2))
    with pytest.raises(ValueError, match="strictly increasing"):
        exp.run(exp.make_config("tiny", fidelity_proxies=(8, 2)))
    with pytest.raises(ValueError, match="downlink must be one of"):
        exp.run(exp.make_config("tiny", downlink="zip"))
