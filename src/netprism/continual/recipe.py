"""The training recipe of a task stream: one :class:`~netprism.train.TrainConfig`, checked.

Saha, Garg & Roy, "Gradient Projection Memory for Continual Learning" (ICLR 2021) train every
task with plain SGD at a constant learning rate; :func:`stream_config` is that recipe, and
:func:`~netprism.continual.runner.run_stream` honours any other ``TrainConfig`` as given.
Task lists of any dataset form become netprism datasets here (:func:`as_tasks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from netprism.data.base import TensorDataset, as_datasets
from netprism.train.config import NO_CHECKPOINTS, TrainConfig, require_train_config
from netprism.train.device import resolve_device

__all__ = ["as_tasks", "resolve_config", "stream_config", "task_config"]


def stream_config(
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 0.01,
    optimizer: str = "sgd",
    seed: int = 0,
    device: str | torch.device = "auto",
) -> TrainConfig:
    """The default recipe of :func:`run_stream`: a constant ``lr``, no momentum, no weight decay.

    Parameters
    ----------
    epochs, batch_size : int
        Per task (and per phase of a task).
    lr : float
        Constant learning rate (``scheduler="none"``).
    optimizer : {"sgd", "adam", "adamw"}
    seed : int
        Seeds the global RNG once per stream and each task's shuffling.
    device : str or torch.device
        "auto": CUDA when present.

    Returns
    -------
    TrainConfig
        ``momentum=0``, ``weight_decay=0``, ``scheduler="none"``, ``progress=False``; change
        any field with ``dataclasses.replace`` (the runner honours every field).

    Examples
    --------
    >>> cfg = stream_config(batch_size=10, lr=0.05)
    >>> cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.scheduler
    (5, 10, 0.05, 0.0, 0.0, 'none')
    """
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=0.0,
        weight_decay=0.0,
        optimizer=optimizer,
        scheduler="none",
        seed=seed,
        device=str(device),
        progress=False,
    )


def resolve_config(config: TrainConfig | None, owner: str = "run_stream") -> TrainConfig:
    """``config`` (default :func:`stream_config`), checked, with its device resolved.

    Checked by :func:`netprism.train.config.require_train_config`: a :class:`TrainConfig` or
    ``None``, ``epochs >= 1``, and no ``checkpoint_dir`` / ``resume`` (a stream is not resumed
    task by task).  ``owner`` names the caller in the messages.

    Examples
    --------
    >>> resolve_config(stream_config(device="cpu")).device
    'cpu'
    >>> resolve_config({"lr": 0.1})
    Traceback (most recent call last):
    ...
    TypeError: run_stream takes config as a netprism.train.TrainConfig or None, got dict
    """
    config = require_train_config(config, stream_config(), owner, NO_CHECKPOINTS)
    return dataclasses.replace(config, device=str(resolve_device(config.device)))


def as_tasks(
    train_tasks: Sequence[Any], test_tasks: Sequence[Any]
) -> tuple[list[TensorDataset], list[TensorDataset]]:
    """Both task lists as netprism datasets (:func:`~netprism.data.base.as_datasets`).

    Tasks that are not netprism datasets get the number of classes of the whole stream (the
    largest over every task), so that a task missing the top classes still shares the head.

    Examples
    --------
    >>> x, y = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    >>> train, test = as_tasks([(x, y), (x, 0 * y)], [(x, torch.arange(6) % 3)] * 2)
    >>> [d.num_classes for d in train + test]
    [3, 3, 3, 3]
    """
    for tasks, label in ((train_tasks, "train"), (test_tasks, "test")):
        if isinstance(tasks, (Dataset, str)) or not isinstance(tasks, Sequence):
            raise TypeError(
                f"{label}_tasks must be a sequence of task datasets (one per task), "
                f"got {type(tasks).__name__}"
            )
    items = [*train_tasks, *test_tasks]
    names = [f"train task {t}" for t in range(len(train_tasks))]
    names += [f"test task {t}" for t in range(len(test_tasks))]
    try:
        converted = as_datasets(items, names=names)
    except ValueError as err:
        if "pass num_classes" not in str(err):
            raise
        raise ValueError(
            f"{err}; in a stream, convert the tasks first: "
            "netprism.data.base.as_datasets(tasks, num_classes=K)"
        ) from err
    return converted[: len(train_tasks)], converted[len(train_tasks) :]


def task_config(config: TrainConfig, epochs: int | None = None, device: Any = None) -> TrainConfig:
    """The engine config of one task's fit: ``config`` as given (optimizer, momentum, weight
    decay, schedule over this fit's epochs), without progress bar or checkpoints (a stream is
    not resumed task by task); ``epochs`` and ``device`` override ``config``'s when given.

    Examples
    --------
    >>> cfg = task_config(TrainConfig(scheduler="cosine", momentum=0.9), epochs=2, device="cpu")
    >>> cfg.epochs, cfg.device, cfg.scheduler, cfg.momentum, cfg.progress
    (2, 'cpu', 'cosine', 0.9, False)
    """
    return dataclasses.replace(
        config,
        epochs=config.epochs if epochs is None else epochs,
        device=config.device if device is None else str(device),
        progress=False,
        checkpoint_dir=None,
        resume=False,
    )
