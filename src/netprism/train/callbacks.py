"""Per-batch and per-epoch callbacks of the training loop.

Methods that watch training (the curvature tracker, AUM, forgetting events) subclass
:class:`Callback`.  A callback whose state must survive a resume implements
``state_dict() -> dict[str, Tensor]`` and ``load_state_dict(state)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from netprism.core.dist import block_range

if TYPE_CHECKING:
    from torch import nn

    from netprism.train.config import TrainConfig
    from netprism.train.data import Batch


@dataclass
class TrainContext:
    """What a callback sees: the live model and optimizer, the epoch, the data and history.

    Attributes
    ----------
    data : source
        The training data as the engine streams it (see :mod:`netprism.train.data`).
    score : source
        The data per-sample methods score after an epoch: ``fit``'s ``score_data``, else
        the training data; read it with :meth:`score_batches` (index order, un-shuffled).
    num_samples : int or None
        ``N``, the size of the training set (``None`` for an ``IterableDataset``).
    seen : BoolTensor (N,) or None
        Which samples training has drawn so far (``drop_last`` or a sampler may skip some).
    output_fn : callable
        Model output -> logits ``(B, K)``.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    data: Any
    score: Any
    output_fn: Callable[[Any], torch.Tensor]
    num_samples: int | None = None
    seen: torch.Tensor | None = None
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    rank: int = 0
    world_size: int = 1

    def score_batches(self, batch_size: int, *, shard: bool = False) -> Iterator[Any]:
        """Every sample of :attr:`score` once, in index order, as batches on the CPU.

        ``shard=True`` in a distributed fit yields only this rank's contiguous block of
        whole batches (the blocks of all ranks together cover the set once).
        """
        if self.num_samples is None:
            raise ValueError(
                "per-sample scoring needs a map-style dataset with a stable index; an "
                "IterableDataset has none"
            )
        first, stop = 0, self.num_samples
        if shard and self.world_size > 1:
            first, stop = block_range(self.num_samples, batch_size, self.rank, self.world_size)
        return self.score.ordered(batch_size, first, stop)


@dataclass
class BatchOutput:
    """One training step's outputs, detached.

    Attributes
    ----------
    index : LongTensor (B,) or None
        Dataset indices of the batch's samples (``None`` for an ``IterableDataset``).
    logits : Tensor (B, K), or (B, T, K) for a sequence model
    y : Tensor (B,) or (B, T)
        Labels (or what a batch hook replaced them with).
    loss : Tensor (B,) or (B, T)
        Per-sample (or per-position) losses, before the mean that was back-propagated.
    """

    index: torch.Tensor | None
    logits: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor


class Callback:
    """Base class; override what you need.  Every hook receives the :class:`TrainContext`.

    Order within one training step::

        batch = on_batch_start(ctx, batch) or batch     # may replace the batch (mixup)
        output = model(batch.x); losses = loss_fn(output, batch)       # (B,) or (B, T)
        loss = losses.mean() + sum(penalty(ctx, batch) for each callback)
        loss.backward(); on_after_backward(ctx, batch)  # may edit .grad (projection)
        clip; optimizer.step(); on_after_step(ctx, batch)               # may edit weights
        on_batch_end(ctx, BatchOutput)                  # records (index, logits, losses)

    Hooks are looked up by name, so a plain object defining only some of them works too.
    Set ``needs_index = True`` on a callback that keeps per-sample records: ``fit`` then
    refuses data without a stable sample index (an ``IterableDataset``).
    """

    needs_index: bool = False

    def on_fit_start(self, ctx: TrainContext) -> None:
        """Before the first epoch (also after a resume)."""

    def on_epoch_start(self, ctx: TrainContext) -> None:
        """Before each epoch; ``ctx.epoch`` is the 0-based epoch about to run."""

    def on_batch_start(self, ctx: TrainContext, batch: Batch) -> Batch | None:
        """Before the forward pass (batch already on ``ctx.device``); return a replacement
        batch or ``None`` to keep it."""
        return None

    def penalty(self, ctx: TrainContext, batch: Batch) -> torch.Tensor | None:
        """A scalar added to the batch's mean loss before ``backward`` (e.g. EWC, D.U.B.)."""
        return None

    def on_after_backward(self, ctx: TrainContext, batch: Batch) -> None:
        """After ``backward``, before clipping and the optimizer step; may edit ``.grad``."""

    def on_after_step(self, ctx: TrainContext, batch: Batch) -> None:
        """Right after ``optimizer.step()``; may edit the weights (e.g. re-apply a mask)."""

    def on_batch_end(self, ctx: TrainContext, batch: BatchOutput) -> None:
        """After each optimizer step, with the step's detached outputs."""

    def on_epoch_end(self, ctx: TrainContext, metrics: dict[str, Any]) -> None:
        """After each epoch, before the checkpoint is written; ``metrics`` may be extended."""

    def on_fit_end(self, ctx: TrainContext) -> None:
        """After the last epoch."""


class KeepBest(Callback):
    """Give the model back the weights of its best epoch on a validation metric.

    After every epoch the metric ``metrics[metric]`` (``"val_accuracy"`` or ``"val_loss"``
    when :func:`~netprism.train.fit` has ``val=``, or a key a callback listed earlier wrote)
    is compared with the best so far; a strict improvement copies the model's ``state_dict``
    (on its device), so ties keep the earlier epoch.  When training ends the best copy is
    loaded back into the model.  The best weights travel with a checkpoint
    (``state_dict``/``load_state_dict``), so a resumed fit still restores them.

    Parameters
    ----------
    metric : str
        The epoch metric to watch.
    mode : {"max", "min"}
        Whether larger or smaller is better.

    Attributes
    ----------
    best_epoch : int or None
        The 0-based epoch whose weights the model holds after the fit (``None`` before the
        first epoch, or when the metric was NaN every epoch: then the last weights stay).
    best_value : float
        The metric at ``best_epoch`` (``nan`` while ``best_epoch`` is ``None``).
    """

    def __init__(self, metric: str = "val_accuracy", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.metric, self.mode = metric, mode
        self.best_epoch: int | None = None
        self.best_value = float("nan")
        self._weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, ctx: TrainContext, metrics: dict[str, Any]) -> None:
        if self.metric not in metrics:
            raise ValueError(
                f"KeepBest watches {self.metric!r}, but the epoch's metrics hold only "
                f"{sorted(metrics)}: pass val= to fit for 'val_accuracy' / 'val_loss'"
            )
        value = float(metrics[self.metric])
        if self._improves(value):
            self.best_epoch, self.best_value = ctx.epoch, value
            self._weights = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}

    def on_fit_end(self, ctx: TrainContext) -> None:
        if self._weights is not None:
            ctx.model.load_state_dict(self._weights)

    def _improves(self, value: float) -> bool:
        if value != value:  # NaN never improves
            return False
        if self.best_epoch is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The best epoch, its value and weights, as tensors (for a checkpoint)."""
        state = {
            "best_epoch": torch.tensor(-1 if self.best_epoch is None else self.best_epoch),
            "best_value": torch.tensor(self.best_value, dtype=torch.float64),
        }
        for k, v in (self._weights or {}).items():
            state[f"weights.{k}"] = v
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` wrote."""
        epoch = int(state["best_epoch"])
        self.best_epoch = None if epoch < 0 else epoch
        self.best_value = float(state["best_value"])
        weights = {k[len("weights.") :]: v for k, v in state.items() if k.startswith("weights.")}
        self._weights = weights or None
