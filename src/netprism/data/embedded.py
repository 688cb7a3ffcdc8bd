"""Embedded datasets that need no download: digits, MNIST-1D, and planted-truth synthetics.

- ``digits``: scikit-learn's bundled 1,797 real 8x8 handwritten digits (Alpaydin & Kaynak,
  UCI), scaled to [0, 1], with a fixed stratified 75/25 train/test split.
- ``mnist1d``: Greydanus, "Scaling down deep learning with MNIST-1D" (2020, arXiv 2011.14439),
  generated offline with the package's own procedural generator and cached.
- ``synthetic``: Gaussian clusters with known centres.
- ``lowrank``: inputs lying near a planted rank-R subspace (for the subspace lens).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netprism.core.validation import check_fraction, check_positive_int
from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.registry import DATASETS
from netprism.io import atomic_write

DIGIT_CLASSES = tuple(str(i) for i in range(10))


def cache_dir() -> Path:
    """netprism's cache folder: ``$NETPRISM_CACHE``, else ``$XDG_CACHE_HOME/netprism``,
    else ``~/.cache/netprism``."""
    if os.environ.get("NETPRISM_CACHE"):
        return Path(os.environ["NETPRISM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "netprism"


@DATASETS.register("digits")
def digits(
    *, split: str = "train", data_dir: Path | None = None, seed: int = 0, **kwargs: Any
) -> TensorDataset:
    """scikit-learn's bundled digits as ``(N, 1, 8, 8)`` in [0, 1]; 1,347 train / 450 test.

    The split is fixed (stratified, ``random_state=0``) whatever ``seed`` is, so numbers
    are comparable across runs and papers.
    """
    _reject_kwargs("digits", kwargs)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    index = np.arange(len(bunch.target))
    train_idx, test_idx = train_test_split(
        index, test_size=0.25, stratify=bunch.target, random_state=0
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    x = torch.from_numpy(bunch.data[idx] / 16.0).float().reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    y = torch.from_numpy(bunch.target[idx]).long()
    info = DatasetInfo(
        "digits",
        DIGIT_CLASSES,
        (1, 8, 8),
        "sklearn.datasets.load_digits (bundled), stratified split random_state=0",
    )
    return TensorDataset(x, y, info)


@DATASETS.register("mnist1d")
def mnist1d(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    num_samples: int = 5000,
    train_split: float = 0.8,
    **kwargs: Any,
) -> TensorDataset:
    """MNIST-1D (defaults: 4,000 train / 1,000 test, inputs ``(40,)``), generated offline and
    cached.

    Uses ``mnist1d.data.make_dataset`` with ``get_dataset_args()`` (``num_samples`` and
    ``train_split`` overridable, e.g. 12,000 and 0.5 for a 6,000-sample test set) -- never
    ``get_dataset``, which tries a download and writes into the working directory.  The
    canonical generator seed (42) is kept so the set matches the paper's; ``seed`` does not
    change it.
    """
    _reject_kwargs("mnist1d", kwargs)
    check_positive_int(num_samples, "num_samples")
    check_fraction(train_split, "train_split", low=0.0)
    arrays = _mnist1d_arrays(num_samples, float(train_split))
    x_key, y_key = ("x", "y") if split == "train" else ("x_test", "y_test")
    x = torch.from_numpy(arrays[x_key]).float()  # (N, 40)
    y = torch.from_numpy(arrays[y_key]).long()
    info = DatasetInfo(
        "mnist1d",
        DIGIT_CLASSES,
        (40,),
        f"mnist1d.data.make_dataset(num_samples={num_samples}, train_split={train_split}), seed 42",
    )
    return TensorDataset(x, y, info)


def _mnist1d_arrays(num_samples: int, train_split: float) -> dict[str, np.ndarray]:
    path = cache_dir() / f"mnist1d_n{num_samples}_split{train_split:g}.npz"
    keys = ("x", "y", "x_test", "y_test")
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in keys}
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # corrupt cache: rebuild below
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split = num_samples, train_split
    data = make_dataset(args)
    arrays = {k: np.asarray(data[k]) for k in keys}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    atomic_write(path, write)
    return arrays


@DATASETS.register("synthetic")
def synthetic(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    n: int = 1000,
    num_classes: int = 4,
    dim: int = 20,
    spread: float = 1.0,
    separation: float = 4.0,
    **kwargs: Any,
) -> TensorDataset:
    """Gaussian clusters: class ``k`` is ``N(mu_k, spread^2 I)`` with ``|mu_k| = separation``.

    The centres depend only on ``seed`` (so train and test share them) and are planted in
    ``info.extra["centers"]`` (K, D).  Train and test draw different samples.
    """
    _reject_kwargs("synthetic", kwargs)
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, dim, generator=gen)
    centers = separation * centers / centers.norm(dim=1, keepdim=True)  # (K, D)
    gen.manual_seed(seed * 2 + (1 if split == "train" else 2) + 10_000)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=gen)]
    x = centers[y] + spread * torch.randn(n, dim, generator=gen)  # (N, D)
    info = DatasetInfo(
        "synthetic",
        tuple(f"c{k}" for k in range(num_classes)),
        (dim,),
        f"Gaussian clusters seed={seed}",
        {"centers": centers},
    )
    return TensorDataset(x, y, info)


def make_lowrank(
    n: int, dim: int, rank: int, *, noise: float = 0.0, seed: int = 0, decay: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows near a planted rank-``R`` subspace: ``x = z diag(s) B^T + noise``.

    Parameters
    ----------
    n, dim, rank : int
        Samples ``N``, ambient dimension ``D`` and planted rank ``R <= D``.
    noise : float
        Standard deviation of isotropic noise added to every coordinate.
    decay : float
        Singular values fall as ``decay**i`` (1.0 gives equal energy per direction).

    Returns
    -------
    x : Tensor (N, D)
    basis : Tensor (D, R)
        Orthonormal columns spanning the planted subspace.
    """
    for value, name in ((n, "n"), (dim, "dim"), (rank, "rank")):
        check_positive_int(value, name)
    if rank > dim:
        raise ValueError(f"rank must be <= dim ({dim}), got {rank}")
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, rank, generator=gen))  # (D, R)
    scales = decay ** torch.arange(rank, dtype=torch.float32)  # (R,)
    z = torch.randn(n, rank, generator=gen) * scales  # (N, R)
    x = z @ basis.T + noise * torch.randn(n, dim, generator=gen)  # (N, D)
    return x, basis


@DATASETS.register("lowrank")
def lowrank(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    n: int = 1000,
    dim: int = 32,
    rank: int = 4,
    noise: float = 0.01,
    num_classes: int = 2,
    **kwargs: Any,
) -> TensorDataset:
    """Inputs near a planted rank-``R`` subspace, labels from a planted linear rule in it.

    ``info.extra["basis"]`` (D, R) is the planted subspace.
    """
    _reject_kwargs("lowrank", kwargs)
    check_fraction(noise, "noise", high=float("inf"))
    offset = 0 if split == "train" else 7919
    x, basis = make_lowrank(n, dim, rank, noise=noise, seed=seed)
    if offset:
        gen = torch.Generator().manual_seed(seed + offset)
        z = torch.randn(n, rank, generator=gen)
        x = z @ basis.T + noise * torch.randn(n, dim, generator=gen)
    coords = x @ basis  # (N, R)
    w = torch.randn(rank, num_classes, generator=torch.Generator().manual_seed(seed + 1))
    y = (coords @ w).argmax(dim=1)
    info = DatasetInfo(
        "lowrank",
        tuple(f"c{k}" for k in range(num_classes)),
        (dim,),
        f"planted rank-{rank} subspace seed={seed}",
        {"basis": basis},
    )
    return TensorDataset(x, y, info)


def _reject_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"dataset {name!r} got unexpected option(s) {sorted(kwargs)}")
