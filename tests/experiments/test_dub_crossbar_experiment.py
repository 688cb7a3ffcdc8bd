import json

import pytest

import netprism.experiments.dub_crossbar  # noqa: F401  (registers the experiment)
from netprism.experiments.base import EXPERIMENTS, execute

CLAIM_IDS = {
    "vgg11_tiles",
    "dub_energy_vs_magnitude",
    "dub_accuracy_loss",
    "energy_model_sensitivity",
}
METHODS = ("dub", "snap_only", "magnitude_global", "magnitude_layer")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("dub_tiny")
    result = execute("dub_crossbar", scale="tiny", out_dir=out)
    return result, json.loads((out / "runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {"dub_crossbar_levels.png", "dub_crossbar_savings.png"}
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0
    assert (out / "result.json").exists()


def test_vgg11_tiles_claim_is_exact(tiny):
    result, _, _ = tiny
    claim = next(c for c in result.claims if c.id == "vgg11_tiles")
    assert claim.measured == 0.0 and claim.holds
    m = result.metrics
    assert [m[f"vgg11_crossbars_{t}"] for t in (32, 64, 128, 256)] == [9002, 2251, 564, 144]
    assert m["vgg11_weights"] == 9_217_728


def test_arms_hit_their_sparsity_and_histograms_cover_every_crossbar(tiny):
    result, runs, _ = tiny
    for run in runs.values():
        dense = run["arms"]["dense@0"]
        assert dense["crossbars"] == 1114  # digits CNN on 16x16 crossbars (calibration)
        for s in result.config["sparsities"]:
            for m in METHODS:
                arm = run["arms"][f"{m}@{s:g}"]
                assert sum(arm["histogram"].values()) == arm["crossbars"] == 1114
                tol = 1e-4 if m.startswith("magnitude") else 0.02
                assert arm["sparsity"] == pytest.approx(s, abs=tol), (m, s)
                assert arm["saving_exp2"] >= arm["saving_linear"] >= 1.0


def test_claims_consistent_with_metrics(tiny):
    result, _, _ = tiny
    m, cfg = result.metrics, result.config

    def ratio(s, key):
        tag = f"s{100 * s:g}"
        mag = max(m[f"magnitude_global_{tag}_{key}"], m[f"magnitude_layer_{tag}_{key}"])
        return m[f"dub_{tag}_{key}"] / mag

    claims = {c.id: c for c in result.claims}
    exp2 = min(ratio(s, "saving_exp2") for s in cfg["sparsities"])
    assert claims["dub_energy_vs_magnitude"].measured == pytest.approx(exp2)
    assert claims["dub_energy_vs_magnitude"].holds == (exp2 >= cfg["min_ratio"])
    linear = min(ratio(s, "saving_linear") for s in cfg["sparsities"])
    assert claims["energy_model_sensitivity"].measured == pytest.approx(linear)
    drop = max(m["dense_acc"] - m[f"dub_s{100 * s:g}_acc"] for s in cfg["sparsities"])
    assert claims["dub_accuracy_loss"].measured == pytest.approx(drop)
    assert claims["dub_accuracy_loss"].holds == (drop <= cfg["max_acc_drop"])


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("dub_crossbar")
    with pytest.raises(ValueError, match=r"sparsities must be values in \(0, 1\)"):
        exp.run(exp.make_config("tiny", sparsities=(0.75, 1.0)))
    with pytest.raises(ValueError, match="size .* must be an int >= 2"):
        exp.run(exp.make_config("tiny", size=1))
    with pytest.raises(ValueError, match="dub_epochs must be an int >= 1"):
        exp.run(exp.make_config("tiny", dub_epochs=0))
    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        exp.run(exp.make_config("tiny", seeds=()))
    with pytest.raises(ValueError, match="model must be one of"):
        exp.run(exp.make_config("tiny", model="resnet"))
    with pytest.raises(ValueError, match="lam must be >= 0"):
        exp.run(exp.make_config("tiny", lam=-1.0))
