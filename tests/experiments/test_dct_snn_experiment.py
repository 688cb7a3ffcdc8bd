import json

import numpy as np
import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {"dct_reconstructs", "dct_beats_rate", "snn_near_ann", "latency_knob"}


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


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("dct_snn")
    with pytest.raises(ValueError, match="multiples of 16"):
        exp.run(exp.make_config("tiny", timesteps=(20,)))
    with pytest.raises(ValueError, match="keep_bases"):
        exp.run(exp.make_config("tiny", keep_bases=(17,)))
    with pytest.raises(ValueError, match="main_dataset"):
        exp.run(exp.make_config("tiny", main_dataset="textures"))
