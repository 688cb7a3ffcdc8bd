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

The data is read in two streamed passes, in index order (a ``Dataset`` or a ``DataLoader``
decoding from disk works: only the rows searched stay in memory): the first keeps each
sample's row, the second searches each chunk of samples (shifted, in input space) against all
rows.  The search is exact up to ``max_exact`` samples (``N * D`` rows held); above it the rows
are first projected to ``projection_dim`` dimensions by a seeded Gaussian random projection
(distances preserved up to a small factor, Johnson-Lindenstrauss), an approximate search that
holds ``N * projection_dim`` values.  Chunks are sized so that one distance block stays under
``block_bytes``; the time is ``O(N^2)`` distances either way.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netprism.core.capture import capture, last_linear_name
from netprism.train.data import make_source

__all__ = ["duplicate_scores", "penultimate_features"]


def penultimate_features(
    model: nn.Module, data: Any, *, layer: str | None = None, batch_size: int = 512
) -> torch.Tensor:
    """The inputs of ``model``'s last ``nn.Linear`` (or of ``layer``) for every sample, in
    index order (streamed), eval mode: ``(N, D)`` float32 on the CPU."""
    return _features_and_labels(model, make_source(data, name="data"), layer, batch_size)[0]


def _features_and_labels(
    model: nn.Module, source: Any, layer: str | None, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``(N, D)`` and labels ``(N,)`` in one streamed pass."""
    name = layer or last_linear_name(model)
    labels: list[torch.Tensor] = []

    def inputs() -> Any:
        for batch in source.ordered(batch_size):
            labels.append(batch.y)
            yield batch.x

    rows = capture(model, [name], inputs(), batch_size=batch_size)
    assert rows is not None
    feats = rows[name].float().cpu()
    if len(feats) != source.num_samples:
        raise ValueError(
            f"layer {name!r} gave {len(feats)} rows for {source.num_samples} samples: choose a "
            "Linear layer"
        )
    return feats, torch.cat(labels)


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
    block_bytes: int = ...,
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
    block_bytes: int = ...,
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
    block_bytes: int = 256 << 20,
    return_neighbors: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """How much closer each sample's nearest differently-labelled neighbour is than its own
    class: higher = more likely one half of a conflicting near-duplicate.

    Parameters
    ----------
    data : TensorDataset, (x, y), Dataset or DataLoader
        ``N`` samples, read twice in index order; the labels decide what conflicts.
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
        Samples read and searched at a time (fewer when a block would pass
        ``block_bytes``).
    max_exact, projection_dim, seed
        Above ``max_exact`` samples the rows are randomly projected to ``projection_dim``
        dimensions (seeded) first: approximate.
    block_bytes : int
        Memory for one block of distances (``chunk * N`` values and a temporary).
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
    if shifts and model is not None:
        raise ValueError("shifts applies to the inputs; it cannot be used with model=")
    if not isinstance(shifts, int) or isinstance(shifts, bool) or shifts < 0:
        raise ValueError(f"shifts must be an int >= 0, got {shifts!r}")
    source = make_source(data, name="data")
    n = source.num_samples
    if n is None:
        raise TypeError("duplicate_scores needs a map-style dataset (samples with an index)")
    project = _projector(max_exact, n, projection_dim, seed)
    chunk = _chunk_rows(chunk_size, n, block_bytes, 8 if n <= max_exact else 4)
    if model is not None:
        feats, y = _features_and_labels(model, source, layer, 512)
        rows = project(feats.double())
        chunks: Any = ((slice(i, min(i + chunk, n)), None) for i in range(0, n, chunk))
    else:  # first pass: every sample's row and label
        firsts = [(project(_flat(b.x)), b.y) for b in source.ordered(chunk)]
        rows, y = torch.cat([r for r, _ in firsts]), torch.cat([t for _, t in firsts]).long()
        del firsts
        chunks = ((_span(b.index), b.x) for b in source.ordered(chunk))
    index = _LabelIndex(rows, y)
    d_same = torch.full((n,), math.inf, dtype=torch.float64)  # squared until the end
    d_conflict = torch.full((n,), math.inf, dtype=torch.float64)
    neighbor = torch.full((n,), -1, dtype=torch.long)
    total = -(-n // chunk)
    for part, x in tqdm(chunks, desc="duplicate search", unit="chunk", total=total,
                        disable=not progress):  # fmt: skip
        if x is None:
            queries = [rows[part]]
        else:
            shifted = [x] if not shifts else _translations(x.double(), shifts)
            queries = [project(_flat(q)) for q in shifted]
        own = y[part, None]
        for q in queries:  # the chunk, shifted, against every unshifted sample
            sq, nearest = index.nearest(q, part)  # (C, K) per class
            d_same[part] = torch.minimum(d_same[part], sq.gather(1, own)[:, 0].double())
            closest, k = sq.scatter(1, own, math.inf).min(1)
            closer = closest.double() < d_conflict[part]
            d_conflict[part] = torch.where(closer, closest.double(), d_conflict[part])
            neighbor[part] = torch.where(
                closer, nearest.gather(1, k[:, None])[:, 0], neighbor[part]
            )
    scores = -(d_conflict.sqrt() / d_same.sqrt().clamp_min(1e-12))
    return (scores, neighbor) if return_neighbors else scores


class _LabelIndex:
    """The searched rows sorted by label, so that each class is one block of columns: a
    block of queries gets its nearest row of every class from one distance matrix."""

    def __init__(self, rows: torch.Tensor, y: torch.Tensor) -> None:
        self.order = torch.argsort(y, stable=True)
        self.rows = rows[self.order]
        self.norms = (self.rows * self.rows).sum(1)
        counts = torch.bincount(y)
        self.bounds = [0, *counts.cumsum(0).tolist()]
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(len(y))

    def nearest(self, q: torch.Tensor, own: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared distance ``(C, K)`` from each query to the nearest row of each class (the
        query's own sample, ``own``, excluded; ``inf`` for an empty class) and that row's
        index ``(C, K)``."""
        c = len(q)
        d = torch.addmm(self.norms, q, self.rows.T, alpha=-2)  # |r|^2 - 2 q.r, (C, N)
        d[torch.arange(c), self.position[own]] = math.inf
        k = len(self.bounds) - 1
        sq = torch.full((c, k), math.inf, dtype=d.dtype)
        where = torch.full((c, k), -1, dtype=torch.long)
        for cls, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            if hi > lo:
                sq[:, cls], at = d[:, lo:hi].min(1)
                where[:, cls] = self.order[at + lo]
        return (sq + (q * q).sum(1, keepdim=True)).clamp_min(0), where


def _span(index: torch.Tensor | None) -> slice:
    """The consecutive indices of an ordered batch as a slice."""
    assert index is not None  # a map-style source always indexes its batches
    return slice(int(index[0]), int(index[-1]) + 1)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).double()


def _chunk_rows(chunk_size: int, n: int, block_bytes: int, itemsize: int) -> int:
    """Samples per search step: ``chunk_size``, or fewer when ``(chunk, n)`` distances and a
    temporary of the same size would pass ``block_bytes``."""
    for name, value in (("chunk_size", chunk_size), ("block_bytes", block_bytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return max(1, min(chunk_size, block_bytes // (2 * itemsize * max(n, 1))))


def _projector(max_exact: int, n: int, k: int, seed: int) -> Any:
    """Identity up to ``max_exact`` samples, else rows -> rows @ a seeded (D, k) projection
    (made from the first rows' width), in float32 (an approximate search: half the time)."""
    if n <= max_exact:
        return lambda rows: rows
    cache: dict[int, torch.Tensor] = {}

    def project(rows: torch.Tensor) -> torch.Tensor:
        d = rows.shape[1]
        if d not in cache:
            cache[d] = _projection(d, k, seed)
        return (rows @ cache[d]).float()

    return project


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
