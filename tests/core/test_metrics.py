"""Ranking metrics: equal to scikit-learn / SciPy on random data with ties; closed cases."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from netprism.core.metrics import (
    auroc,
    cosine,
    pearson,
    precision_at_k,
    rankdata,
    roc_curve,
    spearman,
    top_k_overlap,
)

# Few distinct values force ties; both classes present.
scores_with_ties = st.lists(st.integers(0, 4), min_size=4, max_size=60).map(
    lambda v: np.array(v, dtype=float)
)


def _labels_for(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    return labels


@settings(max_examples=30, deadline=None)
@given(scores=scores_with_ties, seed=st.integers(0, 10_000))
def test_auroc_equals_sklearn_with_ties(scores, seed):
    labels = _labels_for(len(scores), seed)
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_sklearn_continuous_and_bool_labels(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=200)
    labels = rng.random(200) < 0.3
    expected = roc_auc_score(labels, scores)
    assert auroc(labels, scores) == pytest.approx(expected, abs=1e-12)
    assert auroc(torch.from_numpy(labels), torch.from_numpy(scores)) == pytest.approx(expected)


def test_auroc_closed_cases():
    assert auroc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert auroc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0
    assert auroc([0, 1, 0, 1], [5, 5, 5, 5]) == 0.5


@settings(max_examples=30, deadline=None)
@given(scores=scores_with_ties, seed=st.integers(0, 10_000))
def test_roc_curve_endpoints_monotone_and_area(scores, seed):
    labels = _labels_for(len(scores), seed)
    fpr, tpr = roc_curve(labels, scores)
    assert (fpr[0].item(), tpr[0].item()) == (0.0, 0.0)
    assert (fpr[-1].item(), tpr[-1].item()) == (1.0, 1.0)
    assert bool((fpr.diff() >= 0).all()) and bool((tpr.diff() >= 0).all())
    assert len(fpr) == len(np.unique(scores)) + 1  # one point per distinct threshold
    area = float(torch.trapezoid(tpr, fpr))
    assert area == pytest.approx(auroc(labels, scores), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(a=scores_with_ties, seed=st.integers(0, 10_000))
def test_rankdata_and_spearman_equal_scipy(a, seed):
    b = np.random.default_rng(seed).integers(0, 3, len(a)).astype(float)
    np.testing.assert_allclose(rankdata(a).numpy(), stats.rankdata(a))
    if np.ptp(a) > 0 and np.ptp(b) > 0:
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
        assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)


def test_correlations_closed_cases():
    a = torch.arange(10.0)
    assert pearson(a, 3 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 2.0]) == 0.0
    assert cosine([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(cosine([0.0, 0.0], [1.0, 2.0]))


def test_precision_at_k_and_top_k_overlap():
    labels = [1, 0, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.2, 0.1]
    assert precision_at_k(labels, scores, 1) == 1.0
    assert precision_at_k(labels, scores, 3) == pytest.approx(2 / 3)
    assert precision_at_k(labels, scores, 5) == pytest.approx(2 / 5)
    a = [5.0, 4.0, 3.0, 2.0, 1.0]
    assert top_k_overlap(a, a, 3) == 1.0
    assert top_k_overlap(a, a[::-1], 2) == 0.0
    assert top_k_overlap(a, [5.0, 1.0, 4.0, 2.0, 3.0], 2) == 0.5
    assert top_k_overlap(a, a[::-1], 5) == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: auroc([1, 1, 1], [0.1, 0.2, 0.3]), "both classes"),
        (lambda: auroc([0, 1], [0.1, 0.2, 0.3]), "shape"),
        (lambda: auroc([0, 1, 1], [0.1, float("nan"), 0.3]), "finite"),
        (lambda: auroc([0, 2, 1], [0.1, 0.2, 0.3]), "0/1"),
        (lambda: roc_curve([0, 0], [0.1, 0.2]), "both classes"),
        (lambda: precision_at_k([0, 1], [0.1, 0.2], 3), "k must"),
        (lambda: top_k_overlap([1.0, 2.0], [1.0, 2.0], 0), "k must"),
        (lambda: pearson([1.0, 2.0], [1.0, 2.0, 3.0]), "same length"),
        (lambda: spearman([], []), "empty"),
        (lambda: rankdata([[1.0, 2.0]]), "1-D"),
        (lambda: cosine([1.0, float("inf")], [1.0, 2.0]), "finite"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
