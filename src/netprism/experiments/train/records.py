"""What the one training run of the ``train`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainRun:
    """The fitted model's history and test numbers, with the baselines of the same data."""

    history: list[dict[str, float]]  # one dict per epoch: loss, accuracy, val_loss, ...
    test_metrics: dict[str, float]  # "accuracy", "loss" on the test split
    baselines: dict[str, dict[str, float]]  # name -> {"test_accuracy": ...}
    n_train: int
    n_test: int
    parameters: int
    resumed_from: int | None  # the epoch a resumed run continued from, else None
