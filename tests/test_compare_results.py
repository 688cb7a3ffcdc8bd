"""tools/compare_results.py: the bit-identity check of a refactoring."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "compare_results.py"
_spec = importlib.util.spec_from_file_location("compare_results", _PATH)
assert _spec is not None and _spec.loader is not None
cr = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cr  # dataclasses look their module up
_spec.loader.exec_module(cr)


def _result(**metrics: float) -> dict:
    return {
        "metrics": {**metrics, "seconds_per_epoch": 1.0},
        "baselines": {"flat": {"acc": 0.5}},
        "claims": [{"id": "c", "measured": metrics.get("a", 0.0), "target": 0.0, "holds": True}],
        "figures": ["f.png"],
    }


def test_identical_results_compare_identical_and_timing_is_skipped() -> None:
    before, after = _result(a=1.0, b=math.nan), _result(a=1.0, b=math.nan)
    after["metrics"]["seconds_per_epoch"] = 9.0
    row = cr.compare_results("x", before, after)
    assert row.identical
    assert (row.n_numbers, row.n_timing) == (3, 1)  # a, b, baseline.flat.acc; one timing key


@pytest.mark.parametrize("change", ["metric", "baseline", "claim", "figure", "missing"])
def test_any_change_is_reported(change: str) -> None:
    before, after = _result(a=1.0), _result(a=1.0)
    if change == "metric":
        after["metrics"]["a"] = 1.0 + 1e-12
    elif change == "baseline":
        after["baselines"]["flat"]["acc"] = 0.6
    elif change == "claim":
        after["claims"][0]["holds"] = False
    elif change == "figure":
        after["figures"] = []
    else:
        del after["metrics"]["a"]
    row = cr.compare_results("x", before, after)
    assert not row.identical
    assert "DIFFERS" in row.row()


def test_folders_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for side, value in (("a", 1.0), ("b", 1.0), ("c", 2.0)):
        (tmp_path / side / "exp").mkdir(parents=True)
        (tmp_path / side / "exp" / "result.json").write_text(json.dumps(_result(a=value)))
    assert cr.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "| exp | 2/2 | 1 | 0 | identical |" in capsys.readouterr().out
    assert cr.main([str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert cr.main([str(tmp_path / "a"), str(tmp_path / "b"), "absent"]) == 1


def test_a_timing_claim_is_not_compared_but_must_be_there() -> None:
    before, after = _result(a=1.0), _result(a=1.0)
    for res, value in ((before, 31.0), (after, 33.5)):
        res["claims"].append({"id": "fz_cost", "measured": value, "target": 50.0, "holds": False})
    row = cr.compare_results("x", before, after)
    assert row.identical and row.timing_claims == ["fz_cost"]
    del after["claims"][1]
    assert not cr.compare_results("x", before, after).identical


@pytest.mark.parametrize(
    ("key", "timing"),
    [
        ("fit_seconds", True),
        ("perf_prefill_ms_base", True),
        ("guided_mask_us_per_token_cold", True),
        ("perf_decode_tokens_per_s", True),
        ("guided_mask_overhead_pct_cold", True),
        ("curvature / train time digits", True),
        ("b4_ig_real_mse", False),  # "_ms" inside a word is not milliseconds
        ("mixup_msp_gaussian_auroc", False),
        ("overhead_msp_forward_passes", False),
        ("n_per_subpop", False),
        ("timesteps", False),
    ],
)
def test_timing_keys_are_whole_words(key: str, timing: bool) -> None:
    assert cr.is_timing(key) is timing


def test_lists_and_strings_are_compared() -> None:
    before, after = _result(a=1.0), _result(a=1.0)
    before["metrics"]["table"] = [0.5, math.nan, 1.0]
    after["metrics"]["table"] = [0.5, math.nan, 1.0]
    before["metrics"]["note"] = after["metrics"]["note"] = "auroc_tables.md"
    assert cr.compare_results("x", before, after).identical
    after["metrics"]["table"] = [0.5, math.nan, 1.5]
    assert not cr.compare_results("x", before, after).identical
