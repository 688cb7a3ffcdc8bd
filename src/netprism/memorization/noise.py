"""Instance-dependent label noise: each flipped sample takes the class a weak model confuses
it with most.

Symmetric and pair-flip noise (:func:`netprism.data.with_label_noise`) move labels without
looking at the sample; real annotators err on the samples that look like another class.  The
flagship reproduction's grid (Garg, Ravikumar, Roy, ICML 2024, arXiv 2307.05831, with the
peers of Ravikumar et al., ICML 2025) measures every detector on this harder kind as well.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netprism.data import with_label_noise
from netprism.data.base import TensorDataset, as_dataset
from netprism.memorization.confident import out_of_sample_probabilities
from netprism.train import TrainConfig

__all__ = ["instance_dependent_noise", "weak_model_confusion"]


def weak_model_confusion(
    dataset: Any, *, epochs: int = 3, folds: int = 2, seed: int = 0, device: str = "auto"
) -> torch.Tensor:
    """Out-of-sample class probabilities of a weak model: a linear classifier on the flattened
    input, trained ``epochs`` epochs on each of ``folds`` folds of the clean labels.

    Returns
    -------
    Tensor (N, K) float32
    """
    ds = as_dataset(dataset)
    features, k = int(torch.tensor(ds.input_shape).prod()), ds.num_classes
    config = TrainConfig(
        epochs=epochs, lr=1e-2, optimizer="adam", weight_decay=0.0, batch_size=64,
        seed=seed, device=device, progress=False,
    )  # fmt: skip
    return out_of_sample_probabilities(
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(features, k)), ds, folds=folds,
        config=config, seed=seed,
    )  # fmt: skip


def instance_dependent_noise(
    dataset: Any, rate: float, *, seed: int = 0, weak_epochs: int = 3, device: str = "auto"
) -> tuple[TensorDataset, torch.Tensor]:
    """Flip ``round(rate * N)`` labels, chosen at random (``seed``), each to the other class
    :func:`weak_model_confusion` scores highest for that sample.

    Returns
    -------
    noisy : TensorDataset
        Clean labels kept in ``noisy.extras["clean_y"]``.
    flipped : BoolTensor (N,)

    Examples
    --------
    >>> from netprism.data import load_dataset
    >>> ds = load_dataset("digits").subset(range(200))
    >>> noisy, flipped = instance_dependent_noise(ds, 0.1, weak_epochs=1, device="cpu")
    >>> int(flipped.sum()), bool((noisy.y[flipped] != ds.y[flipped]).all())
    (20, True)
    """
    ds = as_dataset(dataset)
    confusion = weak_model_confusion(ds, epochs=weak_epochs, seed=seed, device=device)
    return with_label_noise(ds, rate, kind="instance", seed=seed, confusion=confusion)
