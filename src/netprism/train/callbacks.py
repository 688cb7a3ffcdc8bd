"""Per-batch and per-epoch callbacks of the training loop.

Methods that watch training (the curvature tracker, AUM, forgetting events) subclass
:class:`Callback`.  A callback whose state must survive a resume implements
``state_dict() -> dict[str, Tensor]`` and ``load_state_dict(state)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torch import nn

    from netprism.train.config import TrainConfig


@dataclass
class TrainContext:
    """What a callback sees: the live model and optimizer, the epoch, the data and history.

    ``x`` (N, ...) and ``y`` (N,) are the training tensors (on CPU); batch indices passed to
    :meth:`Callback.on_batch_end` index into them.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    x: torch.Tensor
    y: torch.Tensor
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False


@dataclass
class BatchOutput:
    """One training step's outputs, detached.

    Attributes
    ----------
    index : LongTensor (B,)
        Positions of the batch's samples in the training set.
    logits : Tensor (B, K)
    y : LongTensor (B,)
    loss : Tensor (B,)
        Per-sample losses (before the mean that was back-propagated).
    """

    index: torch.Tensor
    logits: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor


class Callback:
    """Base class; override what you need.  All hooks receive the :class:`TrainContext`."""

    def on_fit_start(self, ctx: TrainContext) -> None:
        """Before the first epoch (also after a resume)."""

    def on_epoch_start(self, ctx: TrainContext) -> None:
        """Before each epoch; ``ctx.epoch`` is the 0-based epoch about to run."""

    def on_batch_end(self, ctx: TrainContext, batch: BatchOutput) -> None:
        """After each optimizer step."""

    def on_epoch_end(self, ctx: TrainContext, metrics: dict[str, Any]) -> None:
        """After each epoch, before the checkpoint is written; ``metrics`` may be extended."""

    def on_fit_end(self, ctx: TrainContext) -> None:
        """After the last epoch."""
