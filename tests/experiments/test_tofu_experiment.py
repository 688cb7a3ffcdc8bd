import dataclasses
import importlib
import json

import pytest
import torch

from netprism.core.results import Result
from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute
from netprism.experiments.tofu.claims import claims_and_metrics

load_experiments()
# the module (the package's ``run`` is the registered experiment function)
tofu_run = importlib.import_module("netprism.experiments.tofu.run")

CLAIM_IDS = {
    "encoder_fidelity",
    "encoder_fidelity_rising",
    "decode_exact",
    "comm_ratio",
    "comm_accuracy_gap",
    "privacy",
    "bad_client_survived",
    "privacy_faithful",
}


@pytest.fixture(scope="module")
def tiny_and_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("tofu_tiny")
    records = []
    one_seed = tofu_run.one_seed

    def keep(config, seed):  # the per-seed records, to recompute claims from
        records.append(one_seed(config, seed))
        return records[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tofu_run, "one_seed", keep)
        result = execute("tofu", scale="tiny", out_dir=out)
    return result, json.loads((out / "tofu_runs.json").read_text()), out, records


@pytest.fixture(scope="module")
def tiny(tiny_and_records):
    return tiny_and_records[:3]


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {
        "tofu_accuracy_vs_bytes.png",
        "tofu_proxies.png",
        "tofu_reconstructions.png",
        "tofu_fidelity.png",
        "tofu_privacy_faithful_mechanism.png",
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


def test_privacy_faithful_twin_is_read_at_its_claim_point(tiny):
    result, _, _ = tiny
    cfg, m = result.config, result.metrics
    claims = {c.id: c for c in result.claims}
    twin, original = claims["privacy_faithful"], claims["privacy"]
    k, b = cfg["privacy_faithful_k"], cfg["attack_batch"]
    assert (twin.target, twin.op) == (original.target, original.op)  # target unchanged
    ratio = m[f"faithful_r0_k{k}_ig_tofu_mse"] / m[f"faithful_r0_k{k}_ig_real_mse"]
    assert twin.measured == pytest.approx(ratio)
    assert twin.settings["local_steps"] == k > 1
    assert twin.settings["true_images"] == twin.settings["ig_batch_size"] == b * k
    assert twin.settings["weights_round"] == 0
    assert twin.seeds == list(cfg["faithful_seeds"])
    assert f"at K={k}, round 0" in twin.diagnosis and "dB" in twin.diagnosis


def test_privacy_faithful_records_cover_the_grid_apart_from_the_reproduced_ones(tiny):
    result, runs, _ = tiny
    cfg = result.config
    per_seed = runs[str(cfg["seeds"][0])]
    grid = {f"r{r}_k{k}" for r in cfg["privacy_rounds"] for k in cfg["privacy_local_steps"]}
    assert set(per_seed["privacy_faithful"]) == grid
    assert set(per_seed["privacy"]) == {"1", str(cfg["attack_batch"])}
    for r in cfg["privacy_rounds"]:
        for k in cfg["privacy_local_steps"]:
            q = per_seed["privacy_faithful"][f"r{r}_k{k}"]
            assert (q["round"], q["local_steps"]) == (r, k)
            assert -1.0 <= q["one_step_cosine"] <= 1.0 and -1.0 <= q["encoder_cosine"] <= 1.0
            assert "dlg_real" not in q  # DLG stays with the reproduced runs


def test_reproduced_claims_ignore_the_faithful_records(tiny_and_records):
    result, _, _, records = tiny_and_records
    config = EXPERIMENTS.get("tofu").make_config("tiny")
    without = [dataclasses.replace(r, privacy_faithful={}) for r in records]
    claims, _, _ = claims_and_metrics(without, config)
    assert {c.id for c in claims} == CLAIM_IDS - {"privacy_faithful"}
    full = {c.id: c.measured for c in result.claims}
    for c in claims:
        assert c.measured == pytest.approx(full[c.id], nan_ok=True)


def test_one_local_step_is_the_reproduced_update_and_k_steps_use_k_batches(tiny_and_records):
    result, *_, records = tiny_and_records
    run = records[0]
    b = result.config["attack_batch"]
    assert torch.equal(run.privacy_faithful[(0, 1)].x, run.privacy[b].x)  # same true batch
    q1, q = run.privacy_faithful[(0, 1)].quality, run.privacy[b].quality
    assert q1["one_step_cosine"] == pytest.approx(1.0, abs=1e-5)  # K = 1 is one SGD step
    assert q1["encoder_cosine"] == pytest.approx(q["encoder_cosine"], abs=1e-4)
    for (_, k), p in run.privacy_faithful.items():
        assert p.x.shape[0] == p.recon["ig_real"].shape[0] == p.recon["ig_tofu"].shape[0] == b * k
        assert torch.equal(p.x[:b], run.privacy[b].x)  # K batches of b: the first is B = 4's


def test_bad_privacy_faithful_config_is_rejected():
    exp = EXPERIMENTS.get("tofu")
    with pytest.raises(ValueError, match="privacy_faithful_k must be one of"):
        exp.run(exp.make_config("tiny", privacy_faithful_k=5))
    with pytest.raises(ValueError, match="privacy_local_steps must be strictly increasing"):
        exp.run(exp.make_config("tiny", privacy_local_steps=(0, 2)))
    with pytest.raises(ValueError, match="privacy_rounds must be strictly increasing"):
        exp.run(exp.make_config("tiny", privacy_rounds=(0, 3)))
    with pytest.raises(ValueError, match="privacy_rounds must be strictly increasing"):
        exp.run(exp.make_config("tiny", privacy_rounds=(2,)))
    with pytest.raises(ValueError, match=r"faithful_seeds \(0, 7\) must be among seeds"):
        exp.run(exp.make_config("tiny", faithful_seeds=(0, 7)))


def test_twin_is_opt_in_at_small():
    from netprism.report.faithful import opt_in_command

    config = EXPERIMENTS.get("tofu").make_config("small")
    assert config.faithful_seeds == ()
    result = Result("tofu", dataclasses.asdict(config), {}, scale="small")
    assert opt_in_command(result) == "netprism run tofu --scale small --faithful-seeds 0,1,2"
