"""Task streams for continual learning: permuted, split and rotated variants of a dataset.

* **Permuted** (domain-incremental, shared head): each task applies a fixed pixel permutation,
  as in PMNIST (Goodfellow et al. 2013; used by GPM, Saha, Garg & Roy, ICLR 2021,
  arXiv 2103.09762, and GEM, Lopez-Paz & Ranzato, NeurIPS 2017).
* **Split** (task-incremental, one head per task): task ``t`` holds a group of classes, labels
  relabelled ``0 .. K_t - 1`` with the originals in ``extras["global_y"]``.
* **Rotated** (domain-incremental): task ``t`` rotates every image by a fixed angle (Rotated
  MNIST, GEM), done with ``affine_grid`` / ``grid_sample`` (no torchvision).

Every function returns ``(train_tasks, test_tasks)``: two lists of ``TensorDataset`` built with
the same transformation per task, ready for :func:`netprism.continual.runner.run_stream`.
``data`` is a registered dataset name (``"digits"``, ``"mnist1d"``, ``"mnist"``,
``"imagefolder"`` with ``data_dir``, ...) or a ``(train, test)`` pair of your own datasets: each
a netprism ``TensorDataset``, a ``torch.utils.data.TensorDataset(x, y)``, an ``(x, y)`` pair of
tensors or arrays, or a map-style ``Dataset`` of ``(x, y)`` items (read by
:func:`netprism.data.base.as_dataset`; the number of classes is the largest label of either set
plus one unless ``num_classes`` is given).
With ``standardize`` (default), inputs are shifted and scaled by the *global* scalar mean and
std of the training set (as in the GPM calibration on digits); the statistics are taken before
any permutation (which does not change them) or rotation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from netprism.core.validation import check_positive_int
from netprism.data import TensorDataset, load_dataset, permuted_tasks, split_tasks
from netprism.data.base import as_datasets

Source = str | tuple[Any, Any]
Stream = tuple[list[TensorDataset], list[TensorDataset]]


def load_pair(
    data: Source,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    standardize: bool = True,
    num_classes: int | None = None,
) -> tuple[TensorDataset, TensorDataset]:
    """The ``(train, test)`` datasets of ``data``, optionally globally standardized.

    Parameters
    ----------
    data : str or (train, test) pair
        A registered dataset name, or two datasets in any form
        :func:`~netprism.data.base.as_dataset` accepts.
    num_classes : int, optional
        For datasets that are not netprism ones: the number of classes (default: the largest
        label of train and test, plus one; required for float labels).

    Examples
    --------
    >>> train, test = load_pair("digits")
    >>> abs(float(train.x.mean())) < 1e-5
    True
    >>> x, y = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    >>> train, test = load_pair(((x, y), (x[:2], y[:2])), standardize=False)
    >>> train.num_classes, test.num_classes, test.input_shape
    (3, 3, (2,))
    """
    if isinstance(data, str):
        train = load_dataset(data, split="train", data_dir=data_dir, seed=seed)
        test = load_dataset(data, split="test", data_dir=data_dir, seed=seed)
    else:
        train, test = _own_pair(data, num_classes)
    if train.input_shape != test.input_shape:
        raise ValueError(
            f"train and test inputs differ in shape: {train.input_shape} vs {test.input_shape}"
        )
    if standardize:
        mean, std = train.x.mean(), train.x.std().clamp_min(1e-8)
        train = train.with_tensors(x=(train.x - mean) / std)
        test = test.with_tensors(x=(test.x - mean) / std)
    return train, test


def _own_pair(data: Any, num_classes: int | None) -> tuple[TensorDataset, TensorDataset]:
    """A user's ``(train, test)`` pair as netprism datasets sharing one number of classes."""
    arrays = (torch.Tensor, np.ndarray)
    if not isinstance(data, tuple) or len(data) != 2 or all(isinstance(d, arrays) for d in data):
        hint = " (one (x, y) pair is a single set)" if isinstance(data, tuple) else ""
        raise TypeError(
            "data must be a dataset name or a (train, test) pair of datasets, e.g. "
            f"((x_train, y_train), (x_test, y_test)); got {type(data).__name__}{hint}"
        )
    train, test = as_datasets(data, num_classes=num_classes, names=("train", "test"))
    return train, test


def permuted_stream(
    data: Source = "digits",
    n_tasks: int = 5,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    first_identity: bool = False,
    standardize: bool = True,
    num_classes: int | None = None,
) -> Stream:
    """Permuted-input stream (domain-incremental; shared ``K``-way head).

    Parameters
    ----------
    data : str or (train, test) pair
        A registered name, or two datasets in any form of
        :func:`~netprism.data.base.as_dataset` (see the module docstring).
    n_tasks : int
    seed : int
        Picks the permutations (the same on train and test).
    first_identity : bool
        Leave task 0 unpermuted.  Default ``False`` like the official GPM code, which
        permutes every task.
    standardize : bool
        Global scalar standardization with the training set's statistics.
    num_classes : int, optional
        For datasets that are not netprism ones (see :func:`load_pair`); every builder takes it.

    Examples
    --------
    >>> train, test = permuted_stream("digits", 3)
    >>> len(train), train[0].input_shape, len(test[2])
    (3, (1, 8, 8), 450)
    """
    check_positive_int(n_tasks, "n_tasks")
    train, test = load_pair(
        data, data_dir=data_dir, seed=seed, standardize=standardize, num_classes=num_classes
    )
    return (
        permuted_tasks(train, n_tasks, seed=seed, first_identity=first_identity),
        permuted_tasks(test, n_tasks, seed=seed, first_identity=first_identity),
    )


def split_stream(
    data: Source = "digits",
    n_tasks: int = 5,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    class_order: list[int] | None = None,
    standardize: bool = True,
    num_classes: int | None = None,
) -> Stream:
    """Class-split stream (task-incremental; run with ``heads="multi"``).

    Task ``t`` holds classes ``class_order[t*K/T : (t+1)*K/T]``, relabelled to
    ``0 .. K/T - 1``; ``extras["global_y"]`` keeps the original labels, which the runner uses
    to pick the task's logits.  ``n_tasks`` must divide ``K``.  ``data`` and ``num_classes`` as
    in :func:`permuted_stream`.

    Examples
    --------
    >>> train, test = split_stream("digits", 5)
    >>> train[1].num_classes, sorted(set(train[1].extras["global_y"].tolist()))
    (2, [2, 3])
    """
    check_positive_int(n_tasks, "n_tasks")
    train, test = load_pair(
        data, data_dir=data_dir, seed=seed, standardize=standardize, num_classes=num_classes
    )
    return (
        split_tasks(train, n_tasks, relabel=True, class_order=class_order),
        split_tasks(test, n_tasks, relabel=True, class_order=class_order),
    )


def rotation_angles(n_tasks: int, max_degrees: float) -> list[float]:
    """Angles evenly spaced over ``[0, max_degrees]``, one per task.

    Examples
    --------
    >>> rotation_angles(3, 90.0)
    [0.0, 45.0, 90.0]
    """
    check_positive_int(n_tasks, "n_tasks")
    if n_tasks == 1:
        return [0.0]
    return [max_degrees * t / (n_tasks - 1) for t in range(n_tasks)]


def rotate_images(x: Tensor, degrees: float) -> Tensor:
    """Rotate a batch of images ``(N, C, H, W)`` counter-clockwise by ``degrees`` about the
    centre (bilinear, zeros outside).

    Examples
    --------
    >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 0, 1] = 1.0   # top-centre pixel
    >>> rotate_images(x, 90.0)[0, 0].round().tolist()      # -> middle-left
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    if x.ndim != 4:
        raise ValueError(f"rotation needs images of shape (N, C, H, W), got {tuple(x.shape)}")
    if degrees % 360 == 0:
        return x.clone()
    a = math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    # theta maps output coords to input coords (normalized, y down): inverse rotation.
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    theta = theta.unsqueeze(0).expand(len(x), 2, 3)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotated_stream(
    data: Source = "digits",
    n_tasks: int = 5,
    max_degrees: float = 90.0,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    standardize: bool = True,
    num_classes: int | None = None,
) -> Stream:
    """Rotated-image stream (domain-incremental; shared head).

    Task ``t`` rotates every image by ``rotation_angles(n_tasks, max_degrees)[t]`` degrees.
    Needs image inputs ``(C, H, W)``; 1-D sets such as ``mnist1d`` raise ``ValueError``.
    Rotation happens on the raw images (zero fill = background), then standardization.
    ``data`` and ``num_classes`` as in :func:`permuted_stream`.

    Examples
    --------
    >>> train, test = rotated_stream("digits", 3, 90.0)
    >>> [d.name for d in train]
    ['digits/rot0', 'digits/rot45', 'digits/rot90']
    """
    check_positive_int(n_tasks, "n_tasks")
    train, test = load_pair(
        data, data_dir=data_dir, seed=seed, standardize=False, num_classes=num_classes
    )
    if len(train.input_shape) != 3:
        raise ValueError(
            f"rotation is not applicable to {train.name!r}: it needs image inputs (C, H, W), "
            f"got input shape {train.input_shape}"
        )
    mean, std = train.x.mean(), train.x.std().clamp_min(1e-8)
    streams: Stream = ([], [])
    for deg in rotation_angles(n_tasks, float(max_degrees)):
        for base, out in zip((train, test), streams):
            x = rotate_images(base.x, deg)
            if standardize:
                x = (x - mean) / std
            out.append(base.with_tensors(x=x, name=f"{base.name}/rot{deg:g}"))
    return streams
