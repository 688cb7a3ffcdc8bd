"""OoD detection metrics computed with scikit-learn: AUROC, AUPR-in/out, FPR at 95 % TPR and
detection error.

As used by Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for
Lightweight Out-of-Distribution Detection" (2020, arXiv 2012.08398) and the detectors it
compares with (Hendrycks & Gimpel 2017; Liang et al., ODIN, 2018; Lee et al. 2018).

Convention (pytorch-ood's): a higher score means more OoD.  Definitions:

- ``auroc``: P(score of an OoD sample > score of an in-distribution sample), ties 1/2;
- ``aupr_in``: average precision with in-distribution as the positive class (score negated);
- ``aupr_out``: average precision with OoD as the positive class;
- ``fpr95``: the fraction of OoD samples accepted as in-distribution when the threshold
  accepts 95 % of the in-distribution samples (in-distribution = positive, ODIN's and
  Mahalanobis' convention; the threshold is the loosest one reaching TPR >= 0.95);
- ``detection_error``: min over thresholds of 0.5 (1 - TPR) + 0.5 FPR.

The cost of a detector (:func:`measure_overhead`) is measured, not declared: forward and
backward passes are counted with hooks on the model, stored statistics from the detector's
tensors, extra parameters against the plain classifier, and wall-clock per 1,000 inputs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import nn

from netprism.robustness.ood import OODDetector

__all__ = [
    "OODMetrics",
    "Overhead",
    "aupr_in",
    "aupr_out",
    "count_parameters",
    "detection_error",
    "fpr_at_tpr",
    "measure_overhead",
    "ood_metrics",
]


@dataclass(frozen=True)
class OODMetrics:
    """The five numbers of one detector on one (in, out) pair; all in [0, 1]."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    detection_error: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _scores(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (N,), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} must be finite: found {bad} NaN/inf value(s)")
    return arr


def _labelled(in_scores: Any, out_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = OoD) and scores of the pooled samples, in then out."""
    s_in, s_out = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    labels = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    return labels, np.concatenate([s_in, s_out])


def fpr_at_tpr(in_scores: Any, out_scores: Any, tpr: float = 0.95) -> float:
    """Fraction of OoD samples accepted when a threshold accepts ``tpr`` of in-distribution.

    Examples
    --------
    >>> fpr_at_tpr([0.1, 0.2, 0.3], [0.9, 0.8])
    0.0
    >>> fpr_at_tpr([0.1, 0.2], [0.1, 0.2])
    1.0
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must lie in (0, 1], got {tpr!r}")
    labels, scores = _labelled(in_scores, out_scores)
    # in-distribution is the positive class and a low OoD score means "in": negate.
    fpr, tpr_curve, _ = roc_curve(1 - labels, -scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr_curve, tpr - 1e-12, side="left")])


def detection_error(in_scores: Any, out_scores: Any) -> float:
    """``min_t 0.5 (1 - TPR(t)) + 0.5 FPR(t)`` over all thresholds.

    Examples
    --------
    >>> detection_error([0.0, 0.1], [0.5, 0.6])
    0.0
    """
    labels, scores = _labelled(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(1 - labels, -scores, drop_intermediate=False)
    return float(np.min(0.5 * (1 - tpr) + 0.5 * fpr))


def aupr_in(in_scores: Any, out_scores: Any) -> float:
    """Average precision with in-distribution as the positive class.

    Examples
    --------
    >>> aupr_in([0.0, 0.1], [0.5, 0.6])
    1.0
    """
    labels, scores = _labelled(in_scores, out_scores)
    return float(average_precision_score(1 - labels, -scores))


def aupr_out(in_scores: Any, out_scores: Any) -> float:
    """Average precision with OoD as the positive class.

    Examples
    --------
    >>> aupr_out([0.0, 0.1], [0.5, 0.6])
    1.0
    """
    labels, scores = _labelled(in_scores, out_scores)
    return float(average_precision_score(labels, scores))


def ood_metrics(in_scores: Any, out_scores: Any) -> OODMetrics:
    """All five metrics of a detector's scores (higher = more OoD).

    Parameters
    ----------
    in_scores : array-like (N_in,)
        Scores of in-distribution samples.
    out_scores : array-like (N_out,)
        Scores of OoD samples.

    Returns
    -------
    OODMetrics

    Examples
    --------
    >>> m = ood_metrics([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7])
    >>> m.auroc, m.fpr95
    (0.9375, 0.25)
    """
    labels, scores = _labelled(in_scores, out_scores)
    return OODMetrics(
        auroc=float(roc_auc_score(labels, scores)),
        aupr_in=aupr_in(in_scores, out_scores),
        aupr_out=aupr_out(in_scores, out_scores),
        fpr95=fpr_at_tpr(in_scores, out_scores),
        detection_error=detection_error(in_scores, out_scores),
    )


# ----------------------------------------------------------------------------- overhead


@dataclass(frozen=True)
class Overhead:
    """What a detector costs beyond the classifier: counted, then timed."""

    extra_params: int
    forward_passes: float  # per input
    backward_passes: float  # per input
    stored_floats: int
    stored_bytes: int
    seconds_per_1000: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def measure_overhead(
    detector: OODDetector,
    x: torch.Tensor,
    *,
    reference: nn.Module | None = None,
    n_timed: int = 1000,
    repeats: int = 3,
) -> Overhead:
    """Count a fitted detector's passes on ``x`` (N, ...) with hooks, its stored statistics,
    its parameters beyond ``reference`` (the plain K-way classifier), and time ``n_timed``
    inputs (median of ``repeats``)."""
    model = detector.model_
    calls = {"forward": 0, "backward": 0}

    def on_backward(grad: torch.Tensor) -> None:
        calls["backward"] += 1

    def on_forward(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        calls["forward"] += 1
        if out.requires_grad:
            out.register_hook(on_backward)

    probe = x[: detector.batch_size]  # one batch: each call processes every input once
    handle = model.register_forward_hook(on_forward)
    try:
        detector.score(probe)
    finally:
        handle.remove()
    stored = detector.stored_tensors()
    timed = x.repeat((n_timed + len(x) - 1) // len(x), *([1] * (x.ndim - 1)))[:n_timed]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.score(timed)
        times.append(time.perf_counter() - start)
    extra = 0 if reference is None else count_parameters(model) - count_parameters(reference)
    return Overhead(
        extra_params=extra,
        forward_passes=float(calls["forward"]),
        backward_passes=float(calls["backward"]),
        stored_floats=sum(t.numel() for t in stored),
        stored_bytes=sum(t.numel() * t.element_size() for t in stored),
        seconds_per_1000=statistics.median(times) * 1000 / n_timed,
    )
