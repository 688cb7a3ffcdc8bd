"""Second-split forgetting time (SSFT), a label-issue peer that needs a second training phase.

Maini, Garg, Lipton, Kolter, "Characterizing Datapoints via Second-Split Forgetting",
NeurIPS 2022 (arXiv 2210.15031): train a model on one half of the data, then go on training it
on the other half only, and watch how soon each sample of the first half is forgotten.
Mislabeled samples, held only by memorization, are forgotten within a few epochs; samples that
agree with their class are kept.  Each half takes both roles, so every sample gets a score;
the cost is about two trainings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from netprism.core.per_sample import predictions
from netprism.core.seed import seed_everything
from netprism.core.validation import check_nonempty
from netprism.data.base import as_tensors
from netprism.memorization.feldman_zhang import ModelFactory
from netprism.train import TrainConfig, fit

__all__ = ["second_split_forgetting", "trailing_misses"]


def second_split_forgetting(
    model_factory: ModelFactory,
    dataset: Any,
    config: TrainConfig | None = None,
    *,
    second_epochs: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """How soon each sample is forgotten once training moves to the other half of the data.

    The samples are split in two halves at random (``seed``).  For each half: a fresh model
    (``model_factory()`` after seeding with ``config.seed``) trains on it for
    ``config.epochs``, then on the other half alone for ``second_epochs``; after the first
    phase and after every epoch of the second, each first-half sample is checked against its
    (given) label.  Its score is the number of those checks, counted back from the last, that
    it failed: ``0`` for a sample still classified as its label at the end, up to
    ``second_epochs + 1`` for one that was wrong from the first check on.

    Parameters
    ----------
    model_factory : callable () -> nn.Module
    dataset : TensorDataset, Dataset, DataLoader or (x, y) tensors
        ``N`` samples with their (possibly noisy) labels, read into memory.
    config : TrainConfig, optional
        The recipe of both phases (default ``TrainConfig()``; no progress bar).
    second_epochs : int, optional
        Epochs on the other half (default ``config.epochs``).
    seed : int
        Seeds the split.

    Returns
    -------
    Tensor (N,) float64
        Higher = forgotten sooner = more likely mislabeled.

    Examples
    --------
    >>> from netprism.data import load_dataset
    >>> ds = load_dataset("synthetic", n=40, num_classes=2, dim=3)
    >>> s = second_split_forgetting(lambda: torch.nn.Linear(3, 2), ds, TrainConfig(epochs=2))
    >>> s.shape, bool(((s >= 0) & (s <= 3)).all())
    (torch.Size([40]), True)
    """
    x, y = as_tensors(dataset)
    check_nonempty(len(y), "dataset")
    if len(y) < 2:
        raise ValueError(f"second-split forgetting needs at least 2 samples, got {len(y)}")
    config = dataclasses.replace(config or TrainConfig(), progress=False)
    later = config.epochs if second_epochs is None else second_epochs
    if not isinstance(later, int) or isinstance(later, bool) or later < 1:
        raise ValueError(f"second_epochs must be a positive int, got {later!r}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    scores = torch.full((len(y),), float("nan"), dtype=torch.float64)
    for first, second in (halves, halves[::-1]):
        seed_everything(config.seed)
        model = model_factory()
        fit(model, (x[first], y[first]), config)
        watch = _Correctness(x[first], y[first])
        watch.record(model)
        fit(model, (x[second], y[second]), dataclasses.replace(config, epochs=later),
            callbacks=[watch])  # fmt: skip
        scores[first] = trailing_misses(torch.stack(watch.rows))
    return scores


def trailing_misses(correct: torch.Tensor) -> torch.Tensor:
    """How many of the last checks each sample failed in a row.

    Parameters
    ----------
    correct : BoolTensor (C, N)
        Check ``c`` of sample ``n``.

    Returns
    -------
    Tensor (N,) float64 in ``[0, C]``

    Examples
    --------
    >>> trailing_misses(torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 1]]).bool())
    tensor([0., 2., 0.], dtype=torch.float64)
    """
    missed = ~correct.bool()
    return missed.flip(0).cumprod(dim=0).sum(dim=0).double()


class _Correctness:
    """Records, after each epoch, which of the watched samples the model gets right."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.rows: list[torch.Tensor] = []

    def on_epoch_end(self, ctx: Any, metrics: dict[str, Any]) -> None:
        self.record(ctx.model)

    def record(self, model: torch.nn.Module) -> None:
        self.rows.append(predictions(model, self.x) == self.y)
