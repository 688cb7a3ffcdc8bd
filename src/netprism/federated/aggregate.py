"""Server-side aggregation of client updates: FedAvg's weighted mean, robust options, checks.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494) aggregates decoded updates as FedAvg does
(McMahan et al. 2017).  The robust options are the coordinate-wise median and trimmed mean
(Yin et al., ICML 2018).  Pure functions on flat update vectors ``(P,)``; the round loop
and the Flower strategy only sequence them, as Flower's ``aggregate.py`` does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

AGGREGATORS = ("mean", "median", "trimmed_mean")


def weighted_average(updates: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """FedAvg: ``sum_c w_c u_c / sum_c w_c`` over client updates ``u_c`` of shape ``(P,)``.

    Examples
    --------
    >>> weighted_average([torch.tensor([1.0, 0.0]), torch.tensor([4.0, 3.0])], [2, 1])
    tensor([2., 1.])
    """
    stacked = _stack(updates)  # (C, P)
    w = torch.as_tensor(list(weights), dtype=stacked.dtype)
    if w.shape != (stacked.shape[0],) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError(
            f"weights must be {stacked.shape[0]} non-negative numbers with a positive sum, "
            f"got {list(weights)}"
        )
    return (w[:, None] * stacked).sum(0) / w.sum()


def coordinate_median(updates: Sequence[torch.Tensor]) -> torch.Tensor:
    """Coordinate-wise median ``(P,)`` (the mean of the two middle values for even ``C``).

    Examples
    --------
    >>> coordinate_median([torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([9.0])])
    tensor([2.])
    >>> coordinate_median([torch.tensor([1.0]), torch.tensor([3.0])])
    tensor([2.])
    """
    stacked = _stack(updates)  # (C, P)
    return stacked.quantile(0.5, dim=0) if stacked.shape[0] > 1 else stacked[0].clone()


def trimmed_mean(updates: Sequence[torch.Tensor], trim: float = 0.2) -> torch.Tensor:
    """Coordinate-wise mean after dropping the ``floor(trim * C)`` largest and smallest values.

    Examples
    --------
    >>> ups = [torch.tensor([v]) for v in (-100.0, 1.0, 2.0, 3.0, 100.0)]
    >>> trimmed_mean(ups, trim=0.2)
    tensor([2.])
    """
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must lie in [0, 0.5), got {trim!r}")
    stacked = _stack(updates)  # (C, P)
    c = stacked.shape[0]
    k = int(math.floor(trim * c))
    ordered = stacked.sort(dim=0).values
    return ordered[k : c - k].mean(0)


def aggregate(
    updates: Sequence[torch.Tensor],
    weights: Sequence[float],
    method: str = "mean",
    *,
    trim: float = 0.2,
) -> torch.Tensor:
    """Aggregate client updates ``(P,)`` with ``method`` in ``AGGREGATORS``.

    The robust methods ignore ``weights`` (every client counts once, so a client cannot buy
    influence by claiming many samples).
    """
    if method == "mean":
        return weighted_average(updates, weights)
    if method == "median":
        return coordinate_median(updates)
    if method == "trimmed_mean":
        return trimmed_mean(updates, trim)
    raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {method!r}")


def update_problem(update: object, numel: int, max_norm: float) -> str | None:
    """Why a client update must be rejected, or ``None`` when it is acceptable.

    Checks, in order: a tensor of shape ``(numel,)``, only finite values, and an L2 norm of
    at most ``max_norm``.

    Examples
    --------
    >>> update_problem(torch.zeros(3), 3, 10.0) is None
    True
    >>> update_problem(torch.zeros(2), 3, 10.0)
    'wrong shape (2,), expected (3,)'
    >>> update_problem(torch.tensor([1.0, float("nan"), 0.0]), 3, 10.0)
    'non-finite values (1 NaN/inf)'
    >>> update_problem(torch.full((3,), 100.0), 3, 10.0)
    'norm 173.2 exceeds max_norm 10'
    """
    if not isinstance(update, torch.Tensor):
        return f"not a tensor ({type(update).__name__})"
    if tuple(update.shape) != (numel,):
        return f"wrong shape {tuple(update.shape)}, expected ({numel},)"
    bad = int((~torch.isfinite(update)).sum())
    if bad:
        return f"non-finite values ({bad} NaN/inf)"
    norm = float(update.norm())
    if norm > max_norm:
        return f"norm {norm:.4g} exceeds max_norm {max_norm:.4g}"
    return None


@dataclass
class Screened:
    """Updates that passed :func:`screen_updates`, and why the others were rejected."""

    updates: list[torch.Tensor] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)


def screen_updates(
    updates: Sequence[object],
    weights: Sequence[float],
    numel: int,
    max_norm: float,
    *,
    ids: Sequence[object] | None = None,
) -> Screened:
    """Keep the acceptable updates; log and record a reason for every rejected one.

    ``updates[c]`` comes from client ``c`` (named ``ids[c]`` in the log when given); a
    malformed one never reaches the aggregator.  The record's keys are the indices ``c``.

    Examples
    --------
    >>> s = screen_updates([torch.zeros(2), torch.zeros(3)], [1, 1], 2, 1.0)
    >>> s.kept, s.rejected
    ([0], {1: 'wrong shape (3,), expected (2,)'})
    """
    out = Screened()
    for c, (u, w) in enumerate(zip(updates, weights, strict=True)):
        reason = update_problem(u, numel, max_norm)
        if reason is None:
            assert isinstance(u, torch.Tensor)
            out.updates.append(u)
            out.weights.append(float(w))
            out.kept.append(c)
        else:
            logger.warning(
                "rejected the update of client %s: %s", c if ids is None else ids[c], reason
            )
            out.rejected[c] = reason
    return out


def _stack(updates: Sequence[torch.Tensor]) -> torch.Tensor:
    if len(updates) == 0:
        raise ValueError("aggregation needs at least one update, got none")
    shapes = {tuple(u.shape) for u in updates}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"updates must be 1-D vectors of one length, got shapes {sorted(shapes)}")
    return torch.stack([u.float() for u in updates])  # (C, P)
