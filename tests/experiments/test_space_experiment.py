import json

import pytest

from netprism.experiments import EXPERIMENTS, load_experiments
from netprism.experiments.base import execute

load_experiments()

CLAIM_IDS = {"space_zero_forgetting", "space_efficiency", "space_acc_vs_gpm"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("space_tiny")
    result = execute("space", scale="tiny", out_dir=out)
    return result, json.loads((out / "streams.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIM_IDS
    assert set(result.figures) == {
        "space_accuracy_matrices.png",
        "space_units.png",
        "space_macs.png",
        "space_acc_bwt_bars.png",
    }
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0


def test_zero_forgetting_holds_exactly_and_units_grow(tiny):
    result, streams, _ = tiny
    claim = next(c for c in result.claims if c.id == "space_zero_forgetting")
    assert claim.measured == 0.0 and claim.holds  # an invariant, not a tuned outcome
    n_tasks = result.config["n_tasks"]
    for per_stream in streams.values():
        for kind, run in per_stream.items():
            R = run["methods"]["space"]["R"]
            assert all(R[t][j] == R[j][j] for j in range(n_tasks) for t in range(j, n_tasks))
            assert run["methods"]["space"]["bwt"] == 0.0
            units, widths = run["space_units"], run["widths"]
            for layer, width in widths.items():
                seq = [u[layer] for u in units]
                assert seq == sorted(seq) and 1 <= seq[0] and seq[-1] <= width, (kind, seq)
            fractions = run["space_mac_fraction"]
            assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1.0


def test_claims_consistent_with_metrics(tiny):
    result, _, _ = tiny
    m = result.metrics
    gap = min(m[f"{k}_space_acc"] - m[f"{k}_gpm_acc"] for k in result.config["streams"])
    claim = next(c for c in result.claims if c.id == "space_acc_vs_gpm")
    assert claim.measured == pytest.approx(gap)
    assert claim.holds == (gap >= -result.config["max_gap_to_gpm"])


def test_bad_config_is_rejected():
    exp = EXPERIMENTS.get("space")
    with pytest.raises(ValueError, match="var_kept needs 1 or 2 values"):
        exp.run(exp.make_config("tiny", var_kept=(0.9, 0.9, 0.9)))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        exp.run(exp.make_config("tiny", var_kept=(1.5,)))
    with pytest.raises(ValueError, match="streams must be"):
        exp.run(exp.make_config("tiny", streams=("rotated",)))
    with pytest.raises(ValueError, match="at least 2 tasks"):
        exp.run(exp.make_config("tiny", n_tasks=1))
