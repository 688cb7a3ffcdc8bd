import json
import sys

import numpy as np
import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute
from netprism.experiments.dct_snn.config import faithful_config

load_experiments()
dct_run = sys.modules["netprism.experiments.dct_snn.run"]  # the package's ``run`` is the entry

CLAIM_IDS = {
    "dct_reconstructs", "dct_beats_rate", "snn_near_ann", "latency_knob",
    "dct_beats_rate_faithful",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("dct_snn_tiny")
    result = execute("dct_snn", scale="tiny", out_dir=out)
    return result, json.loads((out / "dct_snn_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {
        "dct_encoding.png",
        "accuracy_vs_T.png",
        "spike_raster.png",
        "latency_knob.png",
        "dct_faithful_mechanism.png",
    }
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0
    recon = next(c for c in result.claims if c.id == "dct_reconstructs")
    assert recon.holds and recon.measured <= 1e-5  # an identity of the transform


def test_runs_are_consistent_with_the_claims(tiny):
    result, runs, _ = tiny
    main = runs[result.config["main_dataset"]]
    for values in main["acc"].values():
        assert all(0.0 <= v <= 1.0 for v in values)
    gaps = [
        100 * np.mean(np.subtract(main["acc"][f"dct/{t}/ft"], main["acc"][f"rate/{t}/ft"]))
        for t in main["timesteps"]
    ]
    claim = next(c for c in result.claims if c.id == "dct_beats_rate")
    assert claim.measured == pytest.approx(min(gaps))
    assert claim.holds == (min(gaps) > 0)
    assert all(len(th) == 2 and min(th) > 0 for ths in main["thresholds"].values() for th in ths)


def test_coding_statistics_explain_the_mechanism(tiny):
    m = tiny[0].metrics
    # continuous tone: no pixel near 0/1, and Bernoulli rate noise exceeds the DCT code's error
    assert m["digits_tone_extreme_fraction"] < 0.01
    assert m["digits_tone_rate_error_over_signal"] > m["digits_tone_dct_error_over_signal"]


def test_faithful_twin_is_its_own_run_with_settings_and_diagnosis(tiny):
    result, runs, _ = tiny
    claims = {c.id: c for c in result.claims}
    twin, original = claims["dct_beats_rate_faithful"], claims["dct_beats_rate"]
    assert (twin.target, twin.op) == (original.target, original.op)
    # tiny differs from its own faithful variant only in these (datasets and T coincide there)
    assert twin.settings == {"leak": 0.9901, "ft_batch_size": 64, "ft_scheduler": "cosine"}
    assert twin.seeds == [0]
    assert sorted(runs) == ["digits_tone", "faithful-digits_tone"]
    reproduced, faithful = runs["digits_tone"], runs["faithful-digits_tone"]
    assert (reproduced["faithful"], faithful["faithful"]) == (False, True)

    def smallest_gap(run):
        acc = run["acc"]
        return min(
            100 * np.mean(np.subtract(acc[f"dct/{t}/ft"], acc[f"rate/{t}/ft"]))
            for t in run["timesteps"]
        )

    # each claim from its own records: the original from the reproduced run only
    assert original.measured == pytest.approx(smallest_gap(reproduced))
    assert twin.measured == pytest.approx(smallest_gap(faithful))
    worst = min(faithful["timesteps"], key=lambda t: result.metrics[f"faithful_gap_T{t}"])
    assert f"worst T={worst}" in twin.diagnosis
    m = result.metrics
    for t in faithful["timesteps"]:  # the coding statistics at every T, quoted in the diagnosis
        assert f"{m[f'digits_tone_T{t}_dct_error_over_signal']:.2f}" in twin.diagnosis
    # Bernoulli noise shrinks as T grows; at every T it exceeds the DCT code's error here
    rate = [m[f"digits_tone_T{t}_rate_error_over_signal"] for t in faithful["timesteps"]]
    assert rate == sorted(rate, reverse=True)
    assert all(
        m[f"digits_tone_T{t}_dct_error_over_signal"] < m[f"digits_tone_T{t}_rate_error_over_signal"]
        for t in faithful["timesteps"]
    )


def test_finetune_passes_the_schedule_through(monkeypatch):
    seen = []
    monkeypatch.setattr(dct_run, "fit", lambda model, train, cfg: seen.append(cfg))
    config = faithful_config(EXPERIMENTS.get("dct_snn").make_config("full"))
    dct_run.finetune(config, None, None, seed=3)
    assert (seen[0].scheduler, seen[0].epochs, seen[0].batch_size) == ("cosine", 15, 16)
    assert (config.leak, config.seeds) == (0.9901, (0, 1, 2, 3, 4))
    assert EXPERIMENTS.get("dct_snn").make_config("small").faithful_seeds == ()  # opt-in


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("dct_snn")
    with pytest.raises(ValueError, match="multiples of 16"):
        exp.run(exp.make_config("tiny", timesteps=(20,)))
    with pytest.raises(ValueError, match="keep_bases"):
        exp.run(exp.make_config("tiny", keep_bases=(17,)))
    with pytest.raises(ValueError, match="main_dataset"):
        exp.run(exp.make_config("tiny", main_dataset="textures"))
    with pytest.raises(ValueError, match="faithful_ft_scheduler"):
        exp.run(exp.make_config("tiny", faithful_ft_scheduler="halving"))
    with pytest.raises(ValueError, match="multiples of 16"):
        exp.run(exp.make_config("tiny", faithful_timesteps=(24,)))
