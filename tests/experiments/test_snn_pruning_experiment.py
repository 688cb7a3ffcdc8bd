import json

import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {
    "spatial_compression", "temporal_schedule", "quantization_stable", "energy_ratio",
    "spatial_compression_faithful", "energy_ratio_faithful",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("snn_pruning_tiny")
    result = execute("snn_pruning", scale="tiny", out_dir=out)
    return result, json.loads((out / "snn_pruning_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {
        "snn_widths.png",
        "snn_temporal.png",
        "snn_quantization.png",
        "snn_energy.png",
        "snn_faithful_mechanism.png",
    }
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0


def test_runs_are_consistent(tiny):
    result, runs, _ = tiny
    cfg = result.config
    for run in runs.values():
        for key, widths in run["widths"].items():
            assert len(widths) == len(cfg["hidden"])
            assert all(1 <= w <= h for w, h in zip(widths, cfg["hidden"])), key
        # a higher variance threshold never gives a narrower layer
        for q in ("membrane", "rate", "current"):
            lo, hi = run["widths"][f"{q}@0.99"], run["widths"][f"{q}@0.999"]
            assert all(a <= b for a, b in zip(lo, hi))
        retrained = next(iter(run["retrained"].values()))
        assert retrained["params"] < run["full_params"]
        assert set(run["staged"]) == {str(t) for t in (cfg["t0"], *cfg["stages"])}
        assert run["energy_full"]["ann_mac"] == run["full_params"]
        if run["faithful"]:  # spike-coded input: no layer multiplies
            assert run["energy_full"]["snn_mac"] == 0 and run["energy_full"]["snn_ac"] > 0
        else:  # the full SNN at T0 counts every step of the analog first layer
            assert run["energy_full"]["snn_mac"] == cfg["t0"] * 64 * cfg["hidden"][0]
    assert sorted(runs) == ["0", "faithful-0"]


def test_faithful_twins_carry_settings_and_diagnosis(tiny):
    result, runs, _ = tiny
    claims = {c.id: c for c in result.claims}
    for name in ("spatial_compression", "energy_ratio"):
        twin = claims[f"{name}_faithful"]
        assert twin.settings == {"encoding": "rate", "ft_epochs": 1, "stage_epochs": 1}
        assert twin.seeds == [0] and twin.target == claims[name].target
    pruned = runs["0"]["energy_pruned"]
    cap = pruned["ann_mac"] / pruned["snn_mac"]  # direct input: ANN / SNN can never pass this
    assert pruned["ann_over_snn"] <= cap
    assert f"= {cap:.2f}" in claims["energy_ratio_faithful"].diagnosis


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("snn_pruning")
    with pytest.raises(ValueError, match="decreasing"):
        exp.run(exp.make_config("tiny", stages=(16,)))
    with pytest.raises(ValueError, match="encoding"):
        exp.run(exp.make_config("tiny", encoding="phase"))
    with pytest.raises(ValueError, match="retrain rule"):
        exp.run(exp.make_config("tiny", retrain_rules=(("voltage", 0.9),)))


def test_twins_are_opt_in_at_small_and_absent_without_faithful_seeds(tiny, tmp_path):
    assert EXPERIMENTS.get("snn_pruning").make_config("small").faithful_seeds == ()
    result, _, _ = tiny
    without = execute("snn_pruning", scale="tiny", out_dir=tmp_path, faithful_seeds=())
    assert {c.id for c in without.claims} == {c for c in CLAIM_IDS if "faithful" not in c}
    assert "snn_faithful_mechanism.png" not in without.figures
    full = {c.id: c.measured for c in result.claims}
    for c in without.claims:  # the twins draw nothing the reproduced claims read
        assert c.measured == pytest.approx(full[c.id], nan_ok=True)
