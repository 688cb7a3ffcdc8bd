"""How close each sample sits to a sample with a different label: a per-sample score for
conflicting near-duplicates.

Garg, Ravikumar, Roy (ICML 2024, arXiv 2307.05831) found near-identical images carrying
different labels in CIFAR-100 and ImageNet through their high curvature.  A memorization score
flags such a pair only when the network had to memorize one member; a one-pixel shift is
enough for a network to tell the two apart, and then neither score nor plain input distance
finds them.  :func:`duplicate_scores` searches for the nearest differently-labelled neighbour
directly, in one of three spaces: the flattened inputs, the inputs up to a small translation
(every shift of each input by up to ``shifts`` positions, zero-filled, against the others), or the
trained network's penultimate features (the inputs of its last ``nn.Linear``).  The score is
that distance relative to the sample's nearest same-label neighbour, negated: higher means a
conflicting neighbour closer than the sample's own class.

The search is exact (chunked, memory ``O(chunk * N)``) up to ``max_exact`` samples; above it
the rows are first projected to ``projection_dim`` dimensions by a seeded Gaussian random
projection (distances preserved up to a small factor, Johnson-Lindenstrauss), an approximate
but much cheaper search.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netprism.core.capture import capture, last_linear_name
from netprism.data.base import as_tensors

__all__ = ["duplicate_scores", "penultimate_features"]


def penultimate_features(
    model: nn.Module, data: Any, *, layer: str | None = None, batch_size: int = 512
) -> torch.Tensor:
    """The inputs of ``model``'s last ``nn.Linear`` (or of ``layer``) for every sample, in
    index order, eval mode: ``(N, D)`` float32 on the CPU."""
    x, y = as_tensors(data)
    name = layer or last_linear_name(model)
    rows = capture(model, [name], (x, y), batch_size=batch_size)
    assert rows is not None
    feats = rows[name].float().cpu()
    if len(feats) != len(x):
        raise ValueError(
            f"layer {name!r} gave {len(feats)} rows for {len(x)} samples: choose a Linear layer"
        )
    return feats


@overload
def duplicate_scores(
    data: Any,
    *,
    model: nn.Module | None = ...,
    layer: str | None = ...,
    shifts: int = ...,
    chunk_size: int = ...,
    max_exact: int = ...,
    projection_dim: int = ...,
    seed: int = ...,
    return_neighbors: Literal[False] = ...,
    progress: bool = ...,
) -> torch.Tensor: ...


@overload
def duplicate_scores(
    data: Any,
    *,
    model: nn.Module | None = ...,
    layer: str | None = ...,
    shifts: int = ...,
    chunk_size: int = ...,
    max_exact: int = ...,
    projection_dim: int = ...,
    seed: int = ...,
    return_neighbors: Literal[True],
    progress: bool = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


def duplicate_scores(
    data: Any,
    *,
    model: nn.Module | None = None,
    layer: str | None = None,
    shifts: int = 0,
    chunk_size: int = 512,
    max_exact: int = 50_000,
    projection_dim: int = 64,
    seed: int = 0,
    return_neighbors: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """How much closer each sample's nearest differently-labelled neighbour is than its own
    class: higher = more likely one half of a conflicting near-duplicate.

    Parameters
    ----------
    data : TensorDataset, Dataset or (x, y)
        ``N`` samples; the labels decide what conflicts.
    model : nn.Module, optional
        Search in its penultimate features (:func:`penultimate_features`) instead of the
        inputs.
    layer : str, optional
        With ``model``: the layer whose inputs are the features.
    shifts : int
        Input space only: match every translation of each input by up to ``shifts`` positions
        (zero-filled) against the others: along the last two axes of images (N, ..., H, W),
        ``(2 * shifts + 1)**2`` searches, along the only axis of signals (N, L),
        ``2 * shifts + 1``.
    chunk_size : int
        Rows per distance block.
    max_exact, projection_dim, seed
        Above ``max_exact`` samples the rows are randomly projected to ``projection_dim``
        dimensions (seeded) first: approximate.
    return_neighbors : bool
        Also return each sample's nearest differently-labelled neighbour.
    progress : bool
        Show a progress bar (with ETA) over the chunks.

    Returns
    -------
    Tensor (N,) float64
        ``-d_conflict / d_same``: 0 for an exact copy with another label, ``-inf`` when no
        other class exists.
    LongTensor (N,), with ``return_neighbors=True``
        The index of that neighbour (``-1`` when there is none).

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.2], [0.0, 0.01]])
    >>> y = torch.tensor([0, 0, 1, 1, 1])  # sample 4 copies sample 0 with another label
    >>> sorted(duplicate_scores((x, y)).argsort(descending=True)[:2].tolist())
    [0, 4]
    """
    x, y = as_tensors(data)
    if shifts and model is not None:
        raise ValueError("shifts applies to the inputs; it cannot be used with model=")
    if not isinstance(shifts, int) or isinstance(shifts, bool) or shifts < 0:
        raise ValueError(f"shifts must be an int >= 0, got {shifts!r}")
    if model is not None:
        base = penultimate_features(model, (x, y), layer=layer).double()
    else:
        base = x.reshape(len(x), -1).double()
    proj = _projection(base.shape[1], projection_dim, seed) if len(y) > max_exact else None
    rows = base if proj is None else base @ proj
    d_same = torch.full((len(y),), math.inf, dtype=torch.float64)
    d_conflict = torch.full((len(y),), math.inf, dtype=torch.float64)
    neighbor = torch.full((len(y),), -1, dtype=torch.long)
    starts = range(0, len(y), chunk_size)
    for start in tqdm(starts, desc="duplicate search", unit="chunk", disable=not progress):
        part = slice(start, min(start + chunk_size, len(y)))
        same = y[part, None] == y[None, :]  # (C, N)
        queries = [base[part]] if not shifts else _translations(x[part].double(), shifts)
        for query in queries:  # the chunk, shifted, against every unshifted sample
            q = query.reshape(len(query), -1)
            dist = torch.cdist(q if proj is None else q @ proj, rows)  # (C, N)
            dist[torch.arange(dist.shape[0]), torch.arange(part.start, part.stop)] = math.inf
            d_same[part] = torch.minimum(d_same[part], dist.masked_fill(~same, math.inf).min(1)[0])
            closest, where = dist.masked_fill(same, math.inf).min(1)
            closer = closest < d_conflict[part]
            d_conflict[part] = torch.where(closer, closest, d_conflict[part])
            neighbor[part] = torch.where(closer, where, neighbor[part])
    scores = -(d_conflict / d_same.clamp_min(1e-12))
    return (scores, neighbor) if return_neighbors else scores


def _translations(x: torch.Tensor, shifts: int) -> list[torch.Tensor]:
    """Every translation of the signals ``x`` (C, L) by ``dx`` in ``[-shifts, shifts]``, or of
    the images ``x`` (C, ..., H, W) by ``(dy, dx)`` in ``[-shifts, shifts]^2``, zero-filled."""
    s = shifts
    if x.ndim == 2:
        padded, length = F.pad(x, (s, s)), x.shape[-1]
        return [padded[:, s + dx : s + dx + length] for dx in range(-s, s + 1)]
    padded = F.pad(x, (s, s, s, s))
    h, w = x.shape[-2:]
    return [
        padded[..., s + dy : s + dy + h, s + dx : s + dx + w]
        for dy in range(-s, s + 1)
        for dx in range(-s, s + 1)
    ]


def _projection(d: int, k: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(d, k, generator=gen, dtype=torch.float64) / math.sqrt(k)
