import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from netprism.core.metrics import auroc as torch_auroc
from netprism.robustness.ood_metrics import (
    aupr_in,
    aupr_out,
    detection_error,
    fpr_at_tpr,
    ood_metrics,
)


def _brute_force(s_in, s_out, tpr=0.95):
    """Every threshold t accepts (calls in-distribution) the scores <= t."""
    thresholds = np.concatenate([[-np.inf], np.unique(np.concatenate([s_in, s_out]))])
    tprs = np.array([(s_in <= t).mean() for t in thresholds])
    fprs = np.array([(s_out <= t).mean() for t in thresholds])
    return fprs[tprs >= tpr - 1e-12].min(), (0.5 * (1 - tprs) + 0.5 * fprs).min()


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_and_brute_force_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    s_in = rng.normal(0.0, 1.0, 200)
    s_out = rng.normal(0.8, 1.2, 150)
    if seed % 2:  # ties across the two sets
        s_in, s_out = np.round(s_in, 1), np.round(s_out, 1)
    labels = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    scores = np.r_[s_in, s_out]
    m = ood_metrics(s_in, s_out)
    assert m.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m.auroc == pytest.approx(torch_auroc(labels, scores), abs=1e-12)
    assert m.aupr_out == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m.aupr_in == pytest.approx(average_precision_score(1 - labels, -scores), abs=1e-12)
    fpr95, det_err = _brute_force(s_in, s_out)
    assert m.fpr95 == pytest.approx(fpr95, abs=1e-12)
    assert m.detection_error == pytest.approx(det_err, abs=1e-12)
    assert fpr_at_tpr(s_in, s_out, 0.8) == pytest.approx(_brute_force(s_in, s_out, 0.8)[0])


def test_closed_form_cases():
    perfect = ood_metrics([0.0, 0.1, 0.2], [0.5, 0.9])
    assert perfect.to_dict() == {
        "auroc": 1.0,
        "aupr_in": 1.0,
        "aupr_out": 1.0,
        "fpr95": 0.0,
        "detection_error": 0.0,
    }
    same = ood_metrics([0.3] * 10, [0.3] * 10)
    assert same.auroc == 0.5 and same.fpr95 == 1.0 and same.detection_error == 0.5
    reversed_ = ood_metrics([0.5, 0.9], [0.0, 0.1, 0.2])
    assert reversed_.auroc == 0.0 and reversed_.fpr95 == 1.0
    rng = np.random.default_rng(0)
    iid = ood_metrics(rng.normal(size=4000), rng.normal(size=4000))
    assert abs(iid.auroc - 0.5) < 0.03
    # 20 in-distribution scores: accepting 19 (95 %) means t = 18, which lets 17.5 through
    assert fpr_at_tpr(np.arange(20.0), [17.5, 30.0]) == 0.5
    assert fpr_at_tpr(np.arange(20.0), [18.5, 30.0]) == 0.0
    assert aupr_in([0.0], [1.0]) == aupr_out([0.0], [1.0]) == detection_error([0.0], [1.0]) + 1


@pytest.mark.parametrize(
    ("s_in", "s_out", "match"),
    [
        ([], [1.0], "in_scores must be a non-empty 1-D"),
        ([[0.0, 1.0]], [1.0], r"in_scores must be a non-empty 1-D array \(N,\), got shape"),
        ([0.0, np.nan], [1.0], "in_scores must be finite: found 1"),
        ([0.0], [np.inf], "out_scores must be finite"),
    ],
)
def test_bad_scores_are_rejected(s_in, s_out, match):
    with pytest.raises(ValueError, match=match):
        ood_metrics(s_in, s_out)


def test_bad_tpr_is_rejected():
    with pytest.raises(ValueError, match=r"tpr must lie in \(0, 1\], got 1.5"):
        fpr_at_tpr([0.0], [1.0], tpr=1.5)
