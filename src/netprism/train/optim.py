"""The optimizer and the per-epoch learning-rate schedule of :func:`netprism.train.fit`.

``config.optimizer`` names one of three (SGD with momentum, Adam, AdamW); a method whose recipe
needs other settings (AdamW with ``betas=(0.9, 0.95)`` for the byte LM) passes a factory
instead, so the loop stays the engine's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from netprism.train.config import TrainConfig

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that require grad, in ``model.parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(
    model: nn.Module, config: TrainConfig, factory: OptimizerFactory | None = None
) -> torch.optim.Optimizer:
    """The optimizer over ``model``'s trainable parameters.

    Parameters
    ----------
    model : nn.Module
    config : TrainConfig
        ``optimizer``, ``lr``, ``momentum`` and ``weight_decay`` name it when ``factory`` is
        ``None``.
    factory : callable, optional
        ``factory(params) -> Optimizer`` over the trainable parameters, e.g.
        ``functools.partial(torch.optim.AdamW, lr=3e-3, betas=(0.9, 0.95))``.

    Raises
    ------
    ValueError
        The model has no trainable parameter.
    TypeError
        ``factory`` returned something that is not a ``torch.optim.Optimizer``.
    """
    params = trainable_parameters(model)
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad is False everywhere)")
    if factory is not None:
        optimizer = factory(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer(params) must return a torch.optim.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        return optimizer
    # foreach: one call per step for all parameters (PyTorch's default on CUDA only); on the
    # CPU it gives the same weights bit for bit as the per-tensor loop, with less overhead
    lr, decay = config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, weight_decay=decay, foreach=True
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay, foreach=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=decay, foreach=True)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-epoch learning-rate schedule."""
    sched = torch.optim.lr_scheduler
    if config.scheduler == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    if config.scheduler == "step":
        marks = [max(1, math.floor(config.epochs * f)) for f in (0.5, 0.75)]
        return sched.MultiStepLR(optimizer, milestones=marks, gamma=0.1)
    return sched.LambdaLR(optimizer, lambda _: 1.0)
