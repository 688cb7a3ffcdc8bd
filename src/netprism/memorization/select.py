"""Selection on top of scores: label issues and conflicting duplicates.

Scoring (:func:`~netprism.memorization.memorization_scores`) is separate from selection, as
in cleanlab.  Conflicting duplicates -- near-identical inputs carrying different labels -- are
the failure mode Garg et al. (arXiv 2307.05831) surfaced with curvature in CIFAR-100 and
ImageNet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch

from netprism.core.mixture import fit_two_component_mixture
from netprism.data.base import as_tensors

#: The detector used by :func:`find_label_issues` when ``method`` is not given, chosen by a
#: rule written down before it was measured (2026-12-03; ``benchmarks/
#: choose_label_issue_default.py``): on digits with 5 % and 20 % symmetric noise, seeds 0-2,
#: the one-call recipe, the single-run score with the best mean AUROC, a tie (within 0.002)
#: going to the higher mean precision at the true count.  Measured: AUM 0.9990 (precision
#: 0.968), CSL 0.9989 (0.963), epoch-averaged loss 0.9989 (0.960); averaged curvature 0.9859.
DEFAULT_LABEL_ISSUE_METHOD = "aum"


def _score_vector(scores: Any, method: str | None) -> tuple[torch.Tensor, str]:
    if isinstance(scores, torch.Tensor):
        vec, name = scores, method or "given"
    elif isinstance(scores, Mapping) or hasattr(scores, "scores"):
        table = scores if isinstance(scores, Mapping) else scores.scores
        name = method or DEFAULT_LABEL_ISSUE_METHOD
        if name not in table:
            raise KeyError(f"no scores for method {name!r}; have {sorted(table)}")
        vec = table[name]
    else:
        raise TypeError(
            f"scores must be a tensor, a dict or MemorizationScores, got {type(scores).__name__}"
        )
    vec = torch.as_tensor(vec).double()
    if vec.ndim != 1 or len(vec) == 0:
        raise ValueError(f"scores must be a non-empty 1-D tensor (N,), got {tuple(vec.shape)}")
    if not bool(torch.isfinite(vec).all()):
        raise ValueError(f"scores of {name!r} must be finite")
    return vec, name


def find_label_issues(
    scores: Any,
    *,
    method: str | None = None,
    fraction: float | None = None,
    threshold: float | None = None,
    return_mask: bool = False,
) -> torch.Tensor:
    """The samples whose label is likely wrong: indices, most suspicious first.

    Parameters
    ----------
    scores : MemorizationScores, dict of str -> Tensor (N,), or Tensor (N,)
        Higher = more suspicious.
    method : str, optional
        Which score to rank by.  Default :data:`DEFAULT_LABEL_ISSUE_METHOD` (``"aum"``, the
        negated area under the margin), chosen by a rule fixed before its measurement (see
        the constant; the measured tables are in ``docs/methods/memorization.md``).
        Curvature stays available as ``method="curvature"`` and is the memorization score.
    fraction : float in (0, 1), optional
        Return the top ``round(fraction * N)`` samples.
    threshold : float, optional
        Return every sample whose score is ``>= threshold``.
    return_mask : bool
        Return a boolean mask (N,) of the selected samples instead of ranked indices (the
        form of ``cleanlab.filter.find_label_issues``).

    With neither ``fraction`` nor ``threshold`` the size of the set is *estimated*: a
    two-component Gaussian mixture is fitted to the score (min-max scaled, as in DivideMix),
    and the samples above the low component's mean that the high component more likely
    explains are returned (:func:`estimated_issue_count`).  It is an estimate, good on easy
    data and poor on hard data (its measured precision and recall, next to cleanlab's own
    estimate, are in ``docs/methods/memorization.md``; ``netprism run memorization`` measures
    them again).
    Pass ``fraction`` when you know the noise rate.

    Returns
    -------
    LongTensor (M,) of indices, or BoolTensor (N,) with ``return_mask=True``

    Examples
    --------
    >>> find_label_issues({"aum": torch.tensor([0.1, 3.0, 0.2, 2.0])}, fraction=0.5)
    tensor([1, 3])
    >>> loss = torch.cat([torch.linspace(0.0, 0.2, 90), torch.linspace(2.0, 3.0, 10)])
    >>> find_label_issues({"aum": loss}).tolist()        # estimated: the 10 planted ones
    [99, 98, 97, 96, 95, 94, 93, 92, 91, 90]
    >>> find_label_issues({"aum": loss}, return_mask=True).sum().item()
    10
    """
    vec, _ = _score_vector(scores, method)
    if fraction is not None and threshold is not None:
        raise ValueError("give fraction or threshold, not both")
    order = torch.argsort(vec, descending=True, stable=True)
    if fraction is not None:
        if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
        chosen = order[: max(1, round(fraction * len(vec)))]
    elif threshold is not None:
        chosen = order[vec[order] >= threshold]
    else:
        chosen = order[: estimated_issue_count(vec)]
    return as_mask(chosen, len(vec)) if return_mask else chosen


def estimated_issue_count(scores: Any) -> int:
    """How many samples belong to the high-score mode of ``scores`` (N,).

    A two-component Gaussian mixture (:func:`netprism.core.mixture.fit_two_component_mixture`)
    is fitted; a sample counts when its posterior of the high-mean component exceeds 1/2 and
    its score lies above the low component's mean (so the set is a top-M of the ranking).

    Examples
    --------
    >>> estimated_issue_count(torch.cat([torch.zeros(95), torch.full((5,), 4.0)]))
    5
    """
    vec = torch.as_tensor(scores).double()
    if len(vec) < 2:
        return 0
    fit = fit_two_component_mixture(vec)
    return int(((fit.posterior_high > 0.5) & (vec > fit.means[0])).sum())


def as_mask(indices: torch.Tensor, n: int) -> torch.Tensor:
    """Boolean mask (n,) that is True at ``indices``.

    Examples
    --------
    >>> as_mask(torch.tensor([3, 0]), 4).tolist()
    [True, False, False, True]
    """
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.as_tensor(indices, dtype=torch.long)] = True
    return mask


@dataclass
class DuplicateGroup:
    """Near-identical inputs with different labels.

    Attributes
    ----------
    indices : LongTensor (G,)
        Members, highest score first.
    labels : LongTensor (G,)
    score : float
        Mean score of the members (the group's rank key).
    max_distance : float
        Largest distance from a member to its matched partner.
    """

    indices: torch.Tensor
    labels: torch.Tensor
    score: float
    max_distance: float


@overload
def find_conflicting_duplicates(
    dataset: Any,
    scores: Any,
    *,
    method: str = ...,
    radius: float | None = ...,
    candidate_fraction: float = ...,
    chunk_size: int = ...,
    return_groups: Literal[True],
    return_mask: bool = ...,
) -> list[DuplicateGroup]: ...


@overload
def find_conflicting_duplicates(
    dataset: Any,
    scores: Any,
    *,
    method: str = ...,
    radius: float | None = ...,
    candidate_fraction: float = ...,
    chunk_size: int = ...,
    return_groups: Literal[False] = ...,
    return_mask: bool = ...,
) -> torch.Tensor: ...


def find_conflicting_duplicates(
    dataset: Any,
    scores: Any,
    *,
    method: str = "curvature",
    radius: float | None = None,
    candidate_fraction: float = 0.2,
    chunk_size: int = 1024,
    return_groups: bool = False,
    return_mask: bool = False,
) -> torch.Tensor | list[DuplicateGroup]:
    """Near-identical inputs with different labels: indices, highest memorization score first.

    The ``candidate_fraction`` highest-scoring samples are matched (Euclidean distance on
    flattened inputs, computed in chunks, so memory stays ``O(chunk * N)``) against every
    sample; a pair with different labels within ``radius`` joins a group (union-find).

    Parameters
    ----------
    dataset : TensorDataset, Dataset or (x, y)
    scores : as in :func:`find_label_issues`, length N
    method : str
        Score used to choose candidates and rank groups.
    radius : float, optional
        Distance under which two inputs count as near-identical.  Default: a quarter of the
        median nearest-neighbour distance among the candidates.
    candidate_fraction : float in (0, 1]
    chunk_size : int
        Candidates per distance block.
    return_groups : bool
        Return the groups (who conflicts with whom) instead of indices.
    return_mask : bool
        Return a boolean mask (N,) of the members instead of ranked indices.

    Returns
    -------
    LongTensor (M,)
        Every member of a conflicting group, highest score first (as
        :func:`find_label_issues` ranks); or BoolTensor (N,) with ``return_mask=True``; or
        list of DuplicateGroup, highest group score first, with ``return_groups=True``.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [9.0, 1.0]])
    >>> y = torch.tensor([0, 1, 1, 0])
    >>> scores = torch.tensor([3.0, 0.1, 2.0, 0.5])
    >>> find_conflicting_duplicates((x, y), scores, candidate_fraction=1.0).tolist()
    [0, 2]
    >>> groups = find_conflicting_duplicates((x, y), scores, candidate_fraction=1.0,
    ...                                      return_groups=True)
    >>> groups[0].indices.tolist(), groups[0].labels.tolist()
    ([0, 2], [0, 1])
    """
    if return_groups and return_mask:
        raise ValueError("give return_groups or return_mask, not both")
    x, y = as_tensors(dataset)
    vec, _ = _score_vector(scores, method)
    if len(vec) != len(x):
        raise ValueError(f"scores ({len(vec)}) and dataset ({len(x)}) must have the same length")
    if not 0.0 < candidate_fraction <= 1.0:
        raise ValueError(f"candidate_fraction must lie in (0, 1], got {candidate_fraction!r}")
    flat = x.reshape(len(x), -1).double()
    candidates = torch.argsort(vec, descending=True)[: max(1, round(candidate_fraction * len(x)))]
    pairs, nn_dist = _close_pairs(flat, y, candidates, radius, chunk_size)
    if radius is None:
        radius = 0.25 * float(nn_dist.median())
        pairs = [(i, j, d) for i, j, d in pairs if d <= radius]
    groups = group_pairs(pairs, vec, y)
    if return_groups:
        return groups
    members = torch.cat([g.indices for g in groups]) if groups else torch.zeros(0).long()
    ranked = members[torch.argsort(vec[members], descending=True, stable=True)]
    return as_mask(ranked, len(vec)) if return_mask else ranked


def _close_pairs(
    flat: torch.Tensor,
    y: torch.Tensor,
    candidates: torch.Tensor,
    radius: float | None,
    chunk_size: int,
) -> tuple[list[tuple[int, int, float]], torch.Tensor]:
    """Conflicting pairs ``(i, j, distance)`` within ``radius`` (all nearest if None) and each
    candidate's nearest-neighbour distance ``(C,)``."""
    pairs: list[tuple[int, int, float]] = []
    nearest = []
    for chunk in candidates.split(chunk_size):
        dist = torch.cdist(flat[chunk], flat)  # (C, N)
        dist[torch.arange(len(chunk)), chunk] = float("inf")  # not oneself
        nearest.append(dist.min(dim=1).values)
        conflict = y.unsqueeze(0) != y[chunk].unsqueeze(1)  # (C, N)
        if radius is None:  # keep each candidate's closest conflicting partner
            masked = dist.masked_fill(~conflict, float("inf"))
            d, j = masked.min(dim=1)
            pairs += [
                (int(i), int(jj), float(dd)) for i, jj, dd in zip(chunk, j, d) if dd < float("inf")
            ]
        else:
            rows, cols = ((dist <= radius) & conflict).nonzero(as_tuple=True)
            pairs += [(int(chunk[r]), int(c), float(dist[r, c])) for r, c in zip(rows, cols)]
    return pairs, torch.cat(nearest)


def group_pairs(
    pairs: list[tuple[int, int, float]], vec: torch.Tensor, y: torch.Tensor
) -> list[DuplicateGroup]:
    """Pairs ``(i, j, distance)`` joined into groups (union-find), members ranked by ``vec``
    (N,), groups by their mean score."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reach: dict[int, float] = {}
    for i, j, d in pairs:
        parent[find(i)] = find(j)
        reach[i], reach[j] = max(reach.get(i, 0.0), d), max(reach.get(j, 0.0), d)
    members: dict[int, list[int]] = {}
    for i in reach:
        members.setdefault(find(i), []).append(i)
    groups = []
    for idx in members.values():
        order = torch.tensor(sorted(idx, key=lambda k: -float(vec[k])))
        groups.append(
            DuplicateGroup(order, y[order], float(vec[order].mean()), max(reach[k] for k in idx))
        )
    return sorted(groups, key=lambda g: -g.score)
