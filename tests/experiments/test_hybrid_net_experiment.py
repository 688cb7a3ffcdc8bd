import json
import math

import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {"hybrid_beats_xnor", "significant_layers", "significant_layers_faithful"}
MODELS = ("fp", "xnor", "hybrid_k2", "hybrid_k4", "all_hidden_k2")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("hybrid_tiny")
    result = execute("hybrid_net", scale="tiny", out_dir=out)
    return result, json.loads((out / "hybrid_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, runs, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {
        "hybrid_net_significant_dims.png",
        "hybrid_net_precision_map.png",
        "hybrid_net_acc_vs_energy.png",
        "hybrid_net_faithful_mechanism.png",
    }
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0
    reproduced = [r for r in runs if not r["faithful"]]
    assert {r["dataset"] for r in reproduced} == {"mnist1d", "digits"}
    for r in reproduced:
        assert tuple(r["precisions"]) == MODELS
        assert r["precisions"]["xnor"] == [32, 1, 1, 1, 1, 32]
        chosen = r["significant"]["significant"]
        expect = [32] + [2 if n in chosen else 1 for n in r["layers"][1:-1]] + [32]
        assert r["precisions"]["hybrid_k2"] == expect
        assert r["energy"]["xnor"]["fraction_of_xnor"] == 1.0
        assert r["energy"]["fp"]["efficiency_vs_fp"] == 1.0
        assert r["trainings"] <= len(MODELS)  # identical configurations are trained once


def test_claims_consistent_with_metrics(tiny):
    result, runs, _ = tiny
    m, cfg = result.metrics, result.config
    claims = {c.id: c for c in result.claims}
    gain = m["mnist1d_hybrid_k2_gain_vs_xnor"]
    frac = m["mnist1d_hybrid_k2_fraction_of_xnor"]
    beats = claims["hybrid_beats_xnor"]
    assert m["n_seeds"] == len(cfg["seeds"]) == 3
    assert beats.measured == pytest.approx(min(gain / cfg["min_gain"], frac / cfg["min_fraction"]))
    assert beats.holds == (gain >= cfg["min_gain"] and frac >= cfg["min_fraction"])
    assert gain == pytest.approx(m["mnist1d_hybrid_k2_acc"] - m["mnist1d_xnor_acc"])
    primary = [r for r in runs if r["dataset"] == "mnist1d" and not r["faithful"]]
    share = min(
        sum(n not in r["significant"]["significant"] for n in r["layers"][1:-1]) / 4
        for r in primary
    )
    assert claims["significant_layers"].measured == pytest.approx(share)
    assert claims["significant_layers"].holds == (share > 0.5)
    assert 0 < m["mnist1d_first_last_energy_share_xnor"] < 1


def test_faithful_twin_runs_the_deep_xnor_net_and_reads_every_lens(tiny):
    result, runs, _ = tiny
    cfg = result.config
    twins = [r for r in runs if r["faithful"]]
    assert [r["seed"] for r in twins] == list(cfg["faithful_seeds"]) == [0]
    for r in twins:  # the XNOR net of the deep variant only, pooled 40 -> 20 -> 10 -> 5 -> 2
        assert r["dataset"] == "mnist1d" and r["trainings"] == 1
        assert list(r["precisions"]) == ["xnor"] == list(r["accuracy"])
        assert r["precisions"]["xnor"] == [32] + [1] * 8 + [32]
        assert r["widths"] == list(cfg["faithful_widths"])
        assert r["in_channels"] == [1, *cfg["faithful_widths"][:-1]]
        assert r["macs"][-1] == 16 * 2 * 10  # fc sees 16 channels x 2 positions
        readings = [r["significant"], r["significant_other"], *r["lenses"]]
        assert [(g["where"], g["threshold"]) for g in readings] == [
            ("pre", 0.999), ("post", 0.999), ("pre", 0.99), ("post", 0.99)
        ]  # fmt: skip
        assert all(1 <= c <= w for g in readings for c, w in zip(g["counts"], r["widths"]))
        assert r["significant"]["counts"][0] <= r["fan_in"][0] == 3  # 1 channel x 3 taps


def test_faithful_claim_reads_faithful_runs_only(tiny):
    result, runs, _ = tiny
    m, cfg = result.metrics, result.config
    claims = {c.id: c for c in result.claims}
    twin, original = claims["significant_layers_faithful"], claims["significant_layers"]
    assert twin.target == original.target == 0.5 and twin.op == original.op == ">"
    assert twin.seeds == [0]
    assert twin.settings == {
        "datasets": ["mnist1d"], "epochs": 1, "batch_size": 64, "lr": 3e-3,
        "widths": list(cfg["faithful_widths"]), "pool_after": [1, 3, 5, 7],
        "threshold": 0.999, "thresholds_reported": [0.999, 0.99], "where": "pre",
        "models": ["xnor"],
    }  # fmt: skip
    twins = [r for r in runs if r["faithful"]]
    share = min(
        sum(n not in r["significant"]["significant"] for n in r["layers"][1:-1]) / 8 for r in twins
    )
    assert twin.measured == pytest.approx(share) == m["faithful_pre_0.999_min_binary_share"]
    assert m["n_seeds"] == 3  # the reproduced seeds; the twin's are its own
    for where in ("pre", "post"):
        assert f"{where} lens at 0.999: flags" in twin.diagnosis
        assert f"{where} lens at 0.99: flags" in twin.diagnosis
    assert "widen (h1,h5)" in twin.diagnosis and "fan-in grows (h2,h6)" in twin.diagnosis


def test_too_few_seeds_never_holds():
    exp = EXPERIMENTS.get("hybrid_net")
    result = exp.run(exp.make_config("tiny", seeds=(0,), datasets=("mnist1d",), faithful_seeds=()))
    assert "significant_layers_faithful" not in {c.id for c in result.claims}
    beats = next(c for c in result.claims if c.id == "hybrid_beats_xnor")
    assert math.isnan(beats.measured) and not beats.holds
    assert "too few seeds" in beats.text


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("hybrid_net")
    with pytest.raises(ValueError, match="datasets must be"):
        exp.run(exp.make_config("tiny", datasets=("cifar10",)))
    with pytest.raises(ValueError, match="epochs needs 1 or 2"):
        exp.run(exp.make_config("tiny", epochs=(1, 1, 1)))
    with pytest.raises(ValueError, match="must be k-bit"):
        exp.run(exp.make_config("tiny", bits=(1,)))
    with pytest.raises(ValueError, match="bits must be"):
        exp.run(exp.make_config("tiny", control_bits=64))
    with pytest.raises(ValueError, match="where must be"):
        exp.run(exp.make_config("tiny", where="mid"))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        exp.run(exp.make_config("tiny", threshold=0.0))
    with pytest.raises(ValueError, match="widths must give"):
        exp.run(exp.make_config("tiny", widths=(4,)))
    with pytest.raises(ValueError, match="faithful_pool_after must name distinct blocks"):
        exp.run(exp.make_config("tiny", faithful_pool_after=(1, 9)))
    with pytest.raises(ValueError, match="faithful_thresholds must name"):
        exp.run(exp.make_config("tiny", faithful_thresholds=()))
    with pytest.raises(ValueError, match="pools"):  # 40 samples pooled 6 times: below 1
        exp.run(exp.make_config("tiny", faithful_pool_after=(0, 1, 2, 3, 4, 5)))
