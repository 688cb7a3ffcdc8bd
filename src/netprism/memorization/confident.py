"""Confident learning (cleanlab) as a label-issue peer.

Northcutt, Jiang, Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels",
JAIR 2021 (arXiv 1911.00068).  Confident learning needs out-of-sample predicted probabilities:
:func:`out_of_sample_probabilities` produces them by stratified K-fold cross-validation with
netprism's trainer; :func:`confident_learning_scores` ranks samples by cleanlab's label quality
and :func:`confident_learning_issues` selects them with cleanlab's pruning rule.

cleanlab is an optional dependency (``pip install 'netprism[peers]'``), imported only when one
of the two cleanlab functions is called.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from netprism.core.per_sample import eval_mode
from netprism.core.validation import check_finite, check_nonempty
from netprism.data.base import as_tensors
from netprism.memorization.feldman_zhang import ModelFactory
from netprism.train import TrainConfig, fit

__all__ = [
    "confident_learning_issues",
    "confident_learning_scores",
    "out_of_sample_probabilities",
]

CLEANLAB_MISSING = "cleanlab is needed for confident learning: pip install 'netprism[peers]'"


def out_of_sample_probabilities(
    model_factory: ModelFactory,
    dataset: Any,
    *,
    folds: int = 5,
    config: TrainConfig | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Cross-validated predicted probabilities: each sample is predicted by a model that did
    not train on it.

    Folds come from ``sklearn.model_selection.StratifiedKFold(folds, shuffle=True,
    random_state=seed)``.  Fold ``f``'s model is built by ``model_factory()`` after
    ``torch.manual_seed(seed + f)`` and trained with :func:`netprism.train.fit` (``config``
    with ``seed=seed + f``, no progress bar).

    Parameters
    ----------
    model_factory : callable () -> nn.Module
        Returns a fresh model mapping ``(B, *input_shape)`` to logits ``(B, K)``.
    dataset : TensorDataset, Dataset, DataLoader or (x, y) tensors
        ``N`` samples with their (possibly noisy) labels.
    folds : int >= 2
    config : TrainConfig, optional
        Training settings (``TrainConfig()`` by default).
    seed : int >= 0

    Returns
    -------
    Tensor (N, K), float32
        Softmax probabilities; rows sum to 1.  ``K`` is ``dataset.num_classes`` when the
        dataset has it, else ``max(y) + 1``.

    Examples
    --------
    >>> from netprism.data import load_dataset
    >>> ds = load_dataset("synthetic", n=40, num_classes=2, dim=3)
    >>> p = out_of_sample_probabilities(lambda: torch.nn.Linear(3, 2), ds, folds=2,
    ...                                 config=TrainConfig(epochs=1))
    >>> p.shape
    torch.Size([40, 2])
    """
    from sklearn.model_selection import StratifiedKFold

    x, y = as_tensors(dataset)
    x, y = x.detach().cpu().float(), y.detach().cpu().long()
    check_nonempty(len(y), "dataset")
    if not isinstance(folds, int) or isinstance(folds, bool) or not 2 <= folds <= len(y):
        raise ValueError(f"folds must be an int in [2, N={len(y)}], got {folds!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    k = int(getattr(dataset, "num_classes", int(y.max()) + 1))
    config = dataclasses.replace(config or TrainConfig(), progress=False)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = torch.full((len(y), k), float("nan"))
    for f, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y)), y.numpy())):
        torch.manual_seed(seed + f)
        model = model_factory()
        tr, te = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        fit(model, (x[tr], y[tr]), dataclasses.replace(config, seed=seed + f))
        probs[te] = _predict_proba(model, x[te], k)
    return probs


def _predict_proba(model: torch.nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad(), eval_mode(model):
        logits = torch.cat([model(xb.to(device)).cpu() for xb in x.split(512)])  # (n, K')
    if logits.ndim != 2 or logits.shape[1] != k:
        raise ValueError(f"model must output logits of shape (B, {k}), got {tuple(logits.shape)}")
    return F.softmax(logits.float(), dim=1)


def _cleanlab() -> tuple[ModuleType, ModuleType]:
    """cleanlab's ``filter`` and ``rank`` modules, or a clear ``ImportError``."""
    try:
        import cleanlab  # noqa: F401  (importing the package first fails cleanly when hidden)
        from cleanlab import filter as cl_filter
        from cleanlab import rank as cl_rank
    except ImportError as err:
        raise ImportError(CLEANLAB_MISSING) from err
    return cl_filter, cl_rank


def _checked_inputs(labels: Any, pred_probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(N,)`` int64 and probabilities ``(N, K)`` float as NumPy, validated."""
    y = torch.as_tensor(labels).detach().cpu()
    p = torch.as_tensor(pred_probs).detach().cpu()
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"pred_probs must have shape (N, K) with K >= 2, got {tuple(p.shape)}")
    check_nonempty(len(p), "pred_probs")
    if y.ndim != 1 or len(y) != len(p) or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(
            f"labels must be integer class indices of shape ({len(p)},), "
            f"got dtype {y.dtype}, shape {tuple(y.shape)}"
        )
    if int(y.min()) < 0 or int(y.max()) >= p.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {p.shape[1]}), got [{int(y.min())}, {int(y.max())}]"
        )
    p = check_finite(p.to(torch.float64), "pred_probs")
    if bool((p < 0).any()) or not torch.allclose(
        p.sum(dim=1), torch.ones(len(p)).double(), atol=1e-3
    ):
        raise ValueError("pred_probs must be probabilities: non-negative rows summing to 1")
    return y.long().numpy(), p.numpy()


def confident_learning_scores(
    labels: Any, pred_probs: Any, *, method: str = "self_confidence"
) -> torch.Tensor:
    """Label-issue score: ``1 - cleanlab.rank.get_label_quality_scores(labels, pred_probs)``.

    Parameters
    ----------
    labels : array-like (N,), int
        Given (possibly noisy) labels in ``[0, K)``.
    pred_probs : array-like (N, K)
        Out-of-sample predicted probabilities (:func:`out_of_sample_probabilities`).
    method : {"self_confidence", "normalized_margin", "confidence_weighted_entropy"}
        cleanlab's label-quality score.

    Returns
    -------
    Tensor (N,), float64
        Higher means the given label is more likely wrong.

    Examples
    --------
    >>> confident_learning_scores([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    tensor([0.1000, 0.8000], dtype=torch.float64)
    """
    cl_filter, cl_rank = _cleanlab()
    y, p = _checked_inputs(labels, pred_probs)
    quality = cl_rank.get_label_quality_scores(y, p, method=method)
    return 1.0 - torch.as_tensor(np.asarray(quality), dtype=torch.float64)


def confident_learning_issues(
    labels: Any,
    pred_probs: Any,
    *,
    rank_by: str = "self_confidence",
    return_mask: bool = False,
    **kwargs: Any,
) -> torch.Tensor:
    """Samples whose label cleanlab flags as an issue, most suspicious first.

    cleanlab's pruning rule (``cleanlab.filter.find_label_issues``) decides the set; its
    ``return_indices_ranked_by`` orders it, so the result has the form of
    :func:`netprism.memorization.find_label_issues`.

    Parameters
    ----------
    labels : array-like (N,), int
    pred_probs : array-like (N, K)
        Out-of-sample predicted probabilities.
    rank_by : {"self_confidence", "normalized_margin", "confidence_weighted_entropy"}
        cleanlab's label-quality score used to order the flagged samples.
    return_mask : bool
        Return cleanlab's boolean mask (N,) instead of ranked indices.
    **kwargs
        Passed to ``find_label_issues`` (e.g. ``filter_by="both"``); ``n_jobs`` defaults to 1
        (cleanlab otherwise starts a process per CPU, slower than the work on small sets).

    Returns
    -------
    LongTensor (M,) of indices, or BoolTensor (N,) with ``return_mask=True``

    Examples
    --------
    >>> labels = [0] * 10 + [1] * 10
    >>> probs = [[0.9, 0.1]] * 9 + [[0.05, 0.95]] + [[0.1, 0.9]] * 10
    >>> confident_learning_issues(labels, probs).tolist()
    [9]
    >>> confident_learning_issues(labels, probs, return_mask=True).sum().item()
    1
    """
    cl_filter, cl_rank = _cleanlab()
    y, p = _checked_inputs(labels, pred_probs)
    kwargs.setdefault("n_jobs", 1)
    if return_mask:
        issues = cl_filter.find_label_issues(y, p, **kwargs)
        return torch.as_tensor(np.asarray(issues, dtype=bool))
    ranked = cl_filter.find_label_issues(y, p, return_indices_ranked_by=rank_by, **kwargs)
    return torch.as_tensor(np.asarray(ranked, dtype=np.int64))
