"""The dataset registry: ``load_dataset(name, split=..., data_dir=None, seed=...)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from netprism.core.registry import Registry
from netprism.data.base import TensorDataset

DatasetFactory = Callable[..., TensorDataset]
DATASETS: Registry[DatasetFactory] = Registry("dataset")

SPLITS = ("train", "test")


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> TensorDataset:
    """Load a registered dataset.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets` ("digits", "mnist1d", "synthetic", "mnist", ...).
    split : {"train", "test"}
    data_dir : path, optional
        Folder holding the files of on-disk datasets (MNIST idx, CIFAR pickles, image
        folders).  Embedded datasets ignore it.
    seed : int
        Seed for generated data and deterministic splits.
    **kwargs
        Passed to the dataset's factory (e.g. ``n=`` for synthetic sets).

    Returns
    -------
    TensorDataset
        ``x`` of shape ``(N, *input_shape)``, ``y`` of shape ``(N,)`` and metadata.

    Examples
    --------
    >>> ds = load_dataset("synthetic", n=32, seed=1)
    >>> ds.x.shape[0]
    32
    """
    factory = DATASETS.get(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data_dir is not None:
        data_dir = Path(data_dir)
    return factory(split=split, data_dir=data_dir, seed=seed, **kwargs)


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return DATASETS.names()
