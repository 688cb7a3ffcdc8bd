"""Ranking and agreement metrics on 1-D score vectors: AUROC, ROC curve, precision@k, top-k
overlap, Pearson, Spearman, cosine.  torch only (no scikit-learn at run time).

AUROC is computed as the normalised Mann-Whitney U statistic (Hanley & McNeil, "The meaning
and use of the area under a receiver operating characteristic (ROC) curve", Radiology 1982):
the probability that a random positive scores above a random negative, ties counting one half.
With average ranks for ties this equals ``sklearn.metrics.roc_auc_score`` exactly.  Spearman's
rho is Pearson's r of average ranks, as in ``scipy.stats.spearmanr``.

Every function accepts tensors, NumPy arrays or lists (through ``torch.as_tensor``), computes in
float64, and raises ``ValueError`` for empty, non-1-D, mismatched or non-finite input.
Correlations of a constant vector are undefined and come back as ``nan``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "auroc",
    "cosine",
    "pearson",
    "precision_at_k",
    "rankdata",
    "roc_curve",
    "spearman",
    "top_k_overlap",
]


def _vector(x: Any, name: str) -> torch.Tensor:
    """``x`` as a finite, non-empty 1-D float64 CPU tensor."""
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: expected at least one value")
    t = t.to(torch.float64)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name} must be finite: found {int(bad.sum())} NaN/inf value(s), first at {first}"
        )
    return t


def _pair(a: Any, b: Any, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    ta, tb = _vector(a, names[0]), _vector(b, names[1])
    if len(ta) != len(tb):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same length, got {len(ta)} and {len(tb)}"
        )
    return ta, tb


def _binary_labels(labels: Any, n: int) -> torch.Tensor:
    """Labels (bool or 0/1) as a bool tensor of length ``n``."""
    t = torch.as_tensor(labels).detach().cpu()
    if t.ndim != 1 or len(t) != n:
        raise ValueError(f"labels must have shape ({n},) like scores, got {tuple(t.shape)}")
    if t.dtype != torch.bool:
        values = t.to(torch.float64)
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(f"labels must be bool or 0/1, got values {values.unique().tolist()}")
        t = values == 1
    return t


def _both_classes(pos: torch.Tensor) -> tuple[int, int]:
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"labels must contain both classes, got {n_pos} positive and {n_neg} negative"
        )
    return n_pos, n_neg


def _check_k(k: int, n: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}], got {k!r}")
    return k


def rankdata(x: Any) -> torch.Tensor:
    """Ranks of ``x`` starting at 1, tied values sharing their average rank.

    Same as ``scipy.stats.rankdata(x, method="average")``.

    Parameters
    ----------
    x : array-like (N,)
        Finite values.

    Returns
    -------
    Tensor (N,), float64

    Examples
    --------
    >>> rankdata([10.0, 30.0, 20.0, 20.0])
    tensor([1.0000, 4.0000, 2.5000, 2.5000], dtype=torch.float64)
    """
    t = _vector(x, "x")
    sorted_vals, order = torch.sort(t, stable=True)
    _, counts = torch.unique_consecutive(sorted_vals, return_counts=True)  # (G,) group sizes
    ends = counts.cumsum(0).to(torch.float64)  # 1-based rank of each group's last member
    group_rank = ends - (counts.to(torch.float64) - 1) / 2  # mean of ranks end-c+1 .. end
    sorted_ranks = group_rank.repeat_interleave(counts)  # (N,) in sorted order
    ranks = torch.empty_like(sorted_ranks)
    ranks[order] = sorted_ranks
    return ranks


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed from the Mann-Whitney U statistic with average ranks, so it equals
    ``sklearn.metrics.roc_auc_score(labels, scores)`` (ties included) in O(N log N).

    Parameters
    ----------
    labels : array-like (N,), bool or 0/1
        True (1) for positives.
    scores : array-like (N,)
        Finite scores; higher means more likely positive.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        If the lengths differ, a score is not finite, or only one class is present.

    Examples
    --------
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    s = _vector(scores, "scores")
    pos = _binary_labels(labels, len(s))
    n_pos, n_neg = _both_classes(pos)
    rank_sum = float(rankdata(s)[pos].sum())
    u = rank_sum - n_pos * (n_pos + 1) / 2  # pairs (pos, neg) won by the positive, ties 1/2
    return u / (n_pos * n_neg)


def roc_curve(labels: Any, scores: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """False- and true-positive rates at every distinct score threshold.

    Thresholds run from above the largest score (the point ``(0, 0)``) down to the smallest
    score (``(1, 1)``); tied scores form one threshold, so a tie gives one diagonal segment.
    The trapezoidal area under the returned points equals :func:`auroc`.

    Parameters
    ----------
    labels : array-like (N,), bool or 0/1
    scores : array-like (N,)

    Returns
    -------
    fpr, tpr : Tensor (G + 1,), float64
        ``G`` is the number of distinct scores; both are non-decreasing.

    Examples
    --------
    >>> fpr, tpr = roc_curve([0, 1, 1], [0.2, 0.2, 0.9])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 1.0], [0.0, 0.5, 1.0])
    """
    s = _vector(scores, "scores")
    pos = _binary_labels(labels, len(s))
    n_pos, n_neg = _both_classes(pos)
    order = torch.argsort(s, descending=True, stable=True)
    s_sorted, pos_sorted = s[order], pos[order].to(torch.float64)
    _, counts = torch.unique_consecutive(s_sorted, return_counts=True)
    last = counts.cumsum(0) - 1  # index of the last sample at each distinct threshold
    tps = pos_sorted.cumsum(0)[last]
    fps = (last + 1).to(torch.float64) - tps
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fps / n_neg]), torch.cat([zero, tps / n_pos])


def precision_at_k(labels: Any, scores: Any, k: int) -> float:
    """Fraction of positives among the ``k`` highest-scoring samples.

    Ties at the cut are broken by position (earlier samples first), as a stable sort does.

    Parameters
    ----------
    labels : array-like (N,), bool or 0/1
    scores : array-like (N,)
    k : int in [1, N]

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> precision_at_k([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], k=2)
    0.5
    """
    s = _vector(scores, "scores")
    pos = _binary_labels(labels, len(s))
    k = _check_k(k, len(s))
    top = torch.argsort(s, descending=True, stable=True)[:k]
    return float(pos[top].sum()) / k


def top_k_overlap(a: Any, b: Any, k: int) -> float:
    """Fraction of the ``k`` largest entries of ``a`` that are also among the ``k`` largest of
    ``b`` (ties broken by position).

    Parameters
    ----------
    a, b : array-like (N,)
    k : int in [1, N]

    Returns
    -------
    float in [0, 1]; symmetric in ``a`` and ``b``.

    Examples
    --------
    >>> top_k_overlap([4.0, 3.0, 2.0, 1.0], [1.0, 3.0, 4.0, 2.0], k=2)
    0.5
    """
    ta, tb = _pair(a, b, ("a", "b"))
    k = _check_k(k, len(ta))
    top_a = torch.argsort(ta, descending=True, stable=True)[:k]
    top_b = torch.argsort(tb, descending=True, stable=True)[:k]
    return float(torch.isin(top_a, top_b).sum()) / k


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation coefficient of ``a`` and ``b``.

    Parameters
    ----------
    a, b : array-like (N,)

    Returns
    -------
    float in [-1, 1], or ``nan`` when either vector is constant.

    Examples
    --------
    >>> round(pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 4)
    0.9934
    """
    ta, tb = _pair(a, b, ("a", "b"))
    ca, cb = ta - ta.mean(), tb - tb.mean()
    denom = float(ca.norm() * cb.norm())
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(ca @ cb) / denom))


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation: Pearson's r of the average ranks (``scipy.stats.spearmanr``).

    Parameters
    ----------
    a, b : array-like (N,)

    Returns
    -------
    float in [-1, 1], or ``nan`` when either vector is constant.

    Examples
    --------
    >>> round(spearman([1.0, 2.0, 3.0], [2.0, 4.0, 70.0]), 6)
    1.0
    """
    ta, tb = _pair(a, b, ("a", "b"))
    return pearson(rankdata(ta), rankdata(tb))


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of ``a`` and ``b`` (not centred).

    For non-negative scores cosine has a high chance level (two i.i.d. uniform vectors give
    about 0.75); report it beside a permuted baseline and :func:`pearson`.

    Parameters
    ----------
    a, b : array-like (N,)

    Returns
    -------
    float in [-1, 1], or ``nan`` when either vector is all zeros.

    Examples
    --------
    >>> cosine([1.0, 0.0], [1.0, 1.0])  # doctest: +ELLIPSIS
    0.7071...
    """
    ta, tb = _pair(a, b, ("a", "b"))
    denom = float(ta.norm() * tb.norm())
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(ta @ tb) / denom))
