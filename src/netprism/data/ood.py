"""Out-of-distribution (OoD) sets built from the data layer, shaped like an in-distribution set.

Used by the VRM reproduction (Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk
Minimization for Lightweight Out-of-Distribution Detection", 2020, arXiv 2012.08398) and by
any detector in :mod:`netprism.robustness.ood`.

Every builder returns a :class:`~netprism.data.TensorDataset` whose inputs have the reference
input shape; ``info.extra["ood"]`` is ``True`` for OoD sets.  OoD samples keep a label only
where one is meaningful (held-out classes keep their original class); noise gets label 0 of a
single class ``"ood"``.  Detectors never read OoD labels.

- near OoD: :func:`held_out_classes` (e.g. digits 5-9 when 0-4 are in distribution), and the
  transforms :func:`inverted`, :func:`shuffled_pixels`, :func:`rotated` of in-distribution
  inputs;
- far OoD: :func:`gaussian_noise` and :func:`uniform_noise` (the ODIN-era convention:
  N(0.5, 1) clipped to [0, 1], and U(0, 1)), :func:`other_dataset` (another registered set
  resampled to the same input), and :func:`folder_ood` (the user's images).

:func:`check_same_input` raises a clear ``ValueError`` for a set whose input shape differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from netprism.core.seed import make_generator
from netprism.core.validation import check_positive_int
from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.readers.imagefolder import (
    IMAGE_SUFFIXES,
    check_link,
    index_folders,
    load_images,
)
from netprism.data.registry import load_dataset

__all__ = [
    "check_same_input",
    "folder_ood",
    "gaussian_noise",
    "held_out_classes",
    "inverted",
    "other_dataset",
    "rotated",
    "shuffled_pixels",
    "uniform_noise",
]

OOD_CLASS = ("ood",)


def _shape_of(like: TensorDataset | Sequence[int]) -> tuple[int, ...]:
    shape = like.input_shape if isinstance(like, TensorDataset) else tuple(like)
    if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in shape):
        raise ValueError(f"input shape must be a non-empty tuple of positive ints, got {shape!r}")
    return tuple(shape)


def _ood(
    x: torch.Tensor,
    name: str,
    source: str,
    y: torch.Tensor | None = None,
    classes: tuple[str, ...] = OOD_CLASS,
) -> TensorDataset:
    labels = torch.zeros(len(x), dtype=torch.long) if y is None else y
    info = DatasetInfo(name, classes, tuple(x.shape[1:]), source, {"ood": True})
    return TensorDataset(x, labels, info)


def check_same_input(ood: TensorDataset, expected: TensorDataset | Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``ood`` has the expected per-sample input shape.

    Examples
    --------
    >>> check_same_input(gaussian_noise((1, 8, 8), 4), (1, 8, 8))
    >>> check_same_input(gaussian_noise((40,), 4), (1, 8, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: OoD set 'gaussian_noise' has inputs of shape (40,) but the ... shape (1, 8, 8); ...
    """
    want = _shape_of(expected)
    if tuple(ood.input_shape) != want:
        raise ValueError(
            f"OoD set {ood.name!r} has inputs of shape {tuple(ood.input_shape)} but the "
            f"in-distribution inputs have shape {want}; resample it first (other_dataset) "
            "or pass a matching set"
        )


def held_out_classes(
    ds: TensorDataset, in_classes: Sequence[int]
) -> tuple[TensorDataset, TensorDataset]:
    """Split ``ds`` into in-distribution classes (relabelled ``0..k-1``) and the rest (OoD).

    Parameters
    ----------
    ds : TensorDataset
    in_classes : sequence of int
        Class indices kept in distribution, e.g. ``range(5)`` for digits 0-4.

    Returns
    -------
    in_ds, out_ds : TensorDataset
        ``in_ds`` has ``k = len(in_classes)`` classes, labels in ``[0, k)`` in the order given;
        ``out_ds`` keeps the original labels and class names (near OoD).

    Examples
    --------
    >>> ds = load_dataset("digits", split="test")
    >>> near_in, near_out = held_out_classes(ds, range(5))
    >>> near_in.num_classes, sorted(set(near_out.y.tolist()))
    (5, [5, 6, 7, 8, 9])
    """
    keep = [int(c) for c in in_classes]
    bad = [c for c in keep if not 0 <= c < ds.num_classes]
    if not keep or bad or len(set(keep)) != len(keep):
        raise ValueError(
            f"in_classes must be distinct class indices in [0, {ds.num_classes}), got {keep!r}"
        )
    if len(keep) == ds.num_classes:
        raise ValueError(f"in_classes {keep!r} keeps every class: no class is left out as OoD")
    is_in = torch.isin(ds.y, torch.tensor(keep))
    relabel = torch.full((ds.num_classes,), -1, dtype=torch.long)
    relabel[torch.tensor(keep)] = torch.arange(len(keep))
    classes = tuple(ds.classes[c] for c in keep)
    info = DatasetInfo(f"{ds.name}[in]", classes, ds.input_shape, ds.info.source)
    in_ds = TensorDataset(ds.x[is_in], relabel[ds.y[is_in]], info)
    out_ds = _ood(ds.x[~is_in], f"{ds.name}[held-out]", ds.info.source, ds.y[~is_in], ds.classes)
    return in_ds, out_ds


def gaussian_noise(
    like: TensorDataset | Sequence[int],
    n: int,
    *,
    mean: float = 0.5,
    std: float = 1.0,
    clip: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
) -> TensorDataset:
    """``n`` i.i.d. Gaussian images ``N(mean, std^2)`` per input value, clipped to ``clip``.

    Examples
    --------
    >>> ds = gaussian_noise((1, 8, 8), 3)
    >>> ds.x.shape, float(ds.x.min()) >= 0.0
    (torch.Size([3, 1, 8, 8]), True)
    """
    shape = _shape_of(like)
    check_positive_int(n, "n")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std!r}")
    x = mean + std * torch.randn((n, *shape), generator=make_generator(seed))
    if clip is not None:
        x = x.clamp(*clip)
    return _ood(x, "gaussian_noise", f"N({mean:g}, {std:g}^2) clipped to {clip}, seed {seed}")


def uniform_noise(
    like: TensorDataset | Sequence[int],
    n: int,
    *,
    low: float = 0.0,
    high: float = 1.0,
    seed: int = 0,
) -> TensorDataset:
    """``n`` i.i.d. uniform images ``U(low, high)``.

    Examples
    --------
    >>> uniform_noise((40,), 2).x.shape
    torch.Size([2, 40])
    """
    shape = _shape_of(like)
    check_positive_int(n, "n")
    if not high > low:
        raise ValueError(f"high must exceed low, got low={low!r}, high={high!r}")
    x = low + (high - low) * torch.rand((n, *shape), generator=make_generator(seed))
    return _ood(x, "uniform_noise", f"U({low:g}, {high:g}), seed {seed}")


def inverted(ds: TensorDataset, *, low: float = 0.0, high: float = 1.0) -> TensorDataset:
    """Inputs mirrored in ``[low, high]``: ``x -> low + high - x`` (white digits on black
    become black on white).

    Examples
    --------
    >>> ds = uniform_noise((4,), 2)
    >>> torch.allclose(inverted(ds).x, 1 - ds.x)
    True
    """
    return _ood(low + high - ds.x, f"{ds.name}[inverted]", ds.info.source)


def shuffled_pixels(ds: TensorDataset, *, seed: int = 0) -> TensorDataset:
    """Each sample's input values in an independent random order (same value histogram,
    no spatial structure).

    Examples
    --------
    >>> ds = uniform_noise((1, 2, 2), 3)
    >>> out = shuffled_pixels(ds)
    >>> torch.equal(out.x.flatten(1).sort(1).values, ds.x.flatten(1).sort(1).values)
    True
    """
    flat = ds.x.flatten(1)  # (N, D)
    gen = make_generator(seed)
    order = torch.argsort(torch.rand(flat.shape, generator=gen), dim=1)  # (N, D) permutations
    x = flat.gather(1, order).reshape(ds.x.shape)
    return _ood(x, f"{ds.name}[shuffled]", f"{ds.info.source}; pixels shuffled, seed {seed}")


def rotated(ds: TensorDataset, *, quarter_turns: int = 1) -> TensorDataset:
    """Images rotated by ``90 * quarter_turns`` degrees (inputs ``(N, C, H, W)``, H == W).

    Examples
    --------
    >>> ds = uniform_noise((1, 3, 3), 2)
    >>> torch.equal(rotated(ds, quarter_turns=4).x, ds.x)
    True
    """
    if len(ds.input_shape) != 3 or ds.input_shape[1] != ds.input_shape[2]:
        raise ValueError(f"rotated needs square images (C, H, H), got input shape {ds.input_shape}")
    if not isinstance(quarter_turns, int) or isinstance(quarter_turns, bool):
        raise ValueError(f"quarter_turns must be an int, got {quarter_turns!r}")
    x = torch.rot90(ds.x, quarter_turns, dims=(2, 3))
    return _ood(x, f"{ds.name}[rot{90 * quarter_turns}]", ds.info.source)


def _resample(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, ...) -> (N, *shape): bilinear resize for images with the same channels, else the
    flattened signal linearly interpolated to ``prod(shape)`` values."""
    if x.ndim == 4 and len(shape) == 3 and x.shape[1] == shape[0]:
        return F.interpolate(x, size=shape[1:], mode="bilinear", align_corners=False)
    flat = x.flatten(1)[:, None, :]  # (N, 1, D_src)
    d = math.prod(shape)
    if flat.shape[2] != d:
        flat = F.interpolate(flat, size=d, mode="linear", align_corners=True)  # (N, 1, D)
    return flat.reshape(len(x), *shape)


def other_dataset(
    name: str,
    like: TensorDataset | Sequence[int],
    *,
    n: int | None = None,
    split: str = "test",
    value_range: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> TensorDataset:
    """Another registered dataset reshaped to the reference input (far OoD).

    Images with the reference channel count are resized bilinearly; anything else is
    flattened and linearly interpolated to ``prod(input_shape)`` values, then reshaped.  With
    ``value_range`` the whole set is min-max rescaled into it (one affine map for the set).

    Examples
    --------
    >>> far = other_dataset("mnist1d", (1, 8, 8), n=10)
    >>> far.x.shape, float(far.x.min()), float(far.x.max())
    (torch.Size([10, 1, 8, 8]), 0.0, 1.0)
    """
    shape = _shape_of(like)
    src = load_dataset(name, split=split, data_dir=data_dir, seed=seed)
    x = src.x
    if n is not None:
        check_positive_int(n, "n")
        x = x[torch.randperm(len(x), generator=make_generator(seed))[:n]]
    x = _resample(x, shape)
    if value_range is not None:
        lo, hi = float(x.min()), float(x.max())
        x = value_range[0] + (x - lo) * (value_range[1] - value_range[0]) / max(hi - lo, 1e-12)
    source = f"{src.info.source}; resampled {src.input_shape} -> {shape}"
    return _ood(x, f"{name}[as {shape}]", source)


def folder_ood(
    folder: str | Path,
    like: TensorDataset | Sequence[int],
    *,
    resize: bool = True,
    follow_symlinks: bool = False,
) -> TensorDataset:
    """The user's images as an OoD set: class sub-folders or images directly in ``folder``.

    Read with the image-folder reader in mode "L" (1 channel) or "RGB" (3 channels) to match
    the reference ``(C, H, W)``.  With ``resize=False`` images of another size raise
    ``ValueError`` (through :func:`check_same_input`).  Symbolic links that lead out of
    ``folder`` are refused unless ``follow_symlinks=True``.
    """
    shape = _shape_of(like)
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder_ood: {root} is not a folder of images")
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"folder_ood needs an image input shape (1|3, H, W), got {shape}")
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for p in paths:
        check_link(p, root.resolve(), follow_symlinks)
    if not paths:
        _, entries = index_folders([root], follow_symlinks=follow_symlinks)
        paths = [p for p, _ in entries[0]]
    mode = "L" if shape[0] == 1 else "RGB"
    arr = load_images(paths, mode, shape[1:] if resize else None, paths[0])  # (N, C, H, W)
    out = _ood(torch.from_numpy(np.ascontiguousarray(arr)), f"folder:{root.name}", str(root))
    check_same_input(out, shape)
    return out
