"""One optimizer step of the engine, with the hooks methods plug into and the batch checks.

The step is shared by single-process and distributed training (which passes per-sample
weights and a scale so that DDP's gradient average equals the single-process batch mean).
Checks name the offending samples by their dataset index: labels outside the model's classes
and input shapes that change are caught while the first epoch runs, non-finite losses at
every step, before the optimizer can write NaN into the weights.

Sequence models train here too: logits ``(B, T, K)`` against labels ``(B, T)`` give one
cross-entropy per position, and the step minimises their mean over all ``B * T`` positions
(the next-token loss of a language model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.train.callbacks import BatchOutput, TrainContext
from netprism.train.data import Batch

LossFn = Callable[[Any, Batch], torch.Tensor]


def call_hooks(callbacks: Iterable[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on every callback that defines it (duck typing: lower layers such as
    core's CurvatureTracker need not import train)."""
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def train_step(
    ctx: TrainContext,
    forward: nn.Module,
    batch: Batch,
    callbacks: Sequence[Any],
    loss_fn: LossFn | None,
    checks: BatchChecks,
    *,
    weight: torch.Tensor | None = None,
    scale: float = 1.0,
) -> BatchOutput:
    """Forward, loss + penalties, backward, hooks, clip, step; returns the detached outputs.

    ``weight`` (B,) and ``scale`` turn the batch mean into ``scale * sum(weight * loss)``
    (distributed training); the default is the plain mean.
    """
    cfg = ctx.config
    for cb in callbacks:
        hook = getattr(cb, "on_batch_start", None)
        replaced = hook(ctx, batch) if hook is not None else None
        if replaced is not None:
            batch = _checked_replacement(replaced, cb)
    checks.before_forward(batch, ctx)
    output = checks.forward(forward, batch)
    logits = ctx.output_fn(output)  # (B, K)
    if loss_fn is None:
        checks.labels(batch, logits)
        losses = cross_entropy(logits, batch.y, cfg.label_smoothing)  # (B,) or (B, T)
    else:
        losses = loss_fn(output, batch)
        checks.loss_shape(losses, batch)
    if weight is not None and losses.ndim != 1:
        raise ValueError(
            f"distributed training takes one loss per sample, shape ({len(batch.y)},); got "
            f"per-position losses of shape {tuple(losses.shape)}: train it on one process"
        )
    loss = losses.mean() if weight is None else (losses * weight).sum() * scale
    for cb in callbacks:
        hook = getattr(cb, "penalty", None)
        extra = hook(ctx, batch) if hook is not None else None
        if extra is not None:
            loss = loss + extra
    checks.finite(losses, loss, batch, ctx)
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    call_hooks(callbacks, "on_after_backward", ctx, batch)
    if cfg.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(ctx.model.parameters(), cfg.max_grad_norm)
    ctx.optimizer.step()
    call_hooks(callbacks, "on_after_step", ctx, batch)
    return BatchOutput(batch.index, logits.detach(), batch.y, losses.detach())


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0, reduction: str = "none"
) -> torch.Tensor:
    """Cross-entropy of every prediction (``reduction="none"``) or their sum (``"sum"``).

    Parameters
    ----------
    logits : Tensor (B, K) or (B, T, K)
    y : LongTensor (B,) or (B, T)
        Class indices, one per row of ``logits`` without its last axis.
    label_smoothing : float
    reduction : {"none", "sum"}

    Returns
    -------
    Tensor (B,) or (B, T), or a scalar for ``"sum"``
        Per-sample or per-position losses (a sequence is flattened to ``(B * T, K)`` rows,
        the same arithmetic as a next-token loss over the flat batch).
    """
    if logits.ndim == 2:
        return F.cross_entropy(logits, y, reduction=reduction, label_smoothing=label_smoothing)
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        y.reshape(-1),
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    return flat if reduction == "sum" else flat.reshape(y.shape)


def n_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How many argmax predictions of ``logits`` (..., K) match ``y``: class indices shaped
    like ``logits`` without its last axis, or soft targets shaped like ``logits`` (their
    argmax)."""
    if y.is_floating_point() and y.shape == logits.shape:
        y = y.argmax(dim=-1)
    return (logits.argmax(dim=-1) == y).sum()


def _checked_replacement(batch: Batch, cb: Any) -> Batch:
    if batch.index is not None and len(batch.index) != len(batch.y):
        raise ValueError(
            f"{type(cb).__name__}.on_batch_start returned a batch of {len(batch.y)} samples "
            f"with {len(batch.index)} indices: give one index per sample, or index=None"
        )
    return batch


class BatchChecks:
    """Clear errors for bad batches, naming dataset indices and expected shapes.

    ``active`` (the first epoch this fit runs) turns on the per-batch label and shape checks;
    the finiteness check runs at every step.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.active = True
        self.first_forward = True
        self.input_shape: tuple[int, ...] | None = None

    def before_forward(self, batch: Batch, ctx: TrainContext) -> None:
        if not self.active or not isinstance(batch.x, torch.Tensor):
            return
        shape = tuple(batch.x.shape[1:])
        if self.input_shape is None:
            self.input_shape = shape
        elif shape != self.input_shape:
            raise ValueError(
                f"inputs changed shape: samples {_names(batch.index)} have shape {shape}, "
                f"expected {self.input_shape} like the first batch"
            )

    def forward(self, forward: nn.Module, batch: Batch) -> Any:
        if not self.first_forward:
            return forward(batch.x)
        try:
            output = forward(batch.x)
        except (RuntimeError, ValueError, TypeError) as err:
            shape = tuple(batch.x.shape) if isinstance(batch.x, torch.Tensor) else "?"
            raise type(err)(
                f"the model failed on the first batch, inputs of shape {shape} (samples "
                f"{_names(batch.index)}){_expected_input(self.model)}: {err}"
            ) from err
        self.first_forward = False
        return output

    def labels(self, batch: Batch, logits: torch.Tensor) -> None:
        y = batch.y
        if not self.active:
            return
        if y.ndim not in (1, 2) or y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(
                f"cross-entropy needs labels of shape (B,) or (B, T) holding class indices, got "
                f"dtype {y.dtype} and shape {tuple(y.shape)}; pass loss_fn= for other targets"
            )
        if logits.ndim != y.ndim + 1 or logits.shape[:-1] != y.shape:
            want = "(B, K)" if y.ndim == 1 else f"(B, T, K) = {(*y.shape, 'K')}"
            raise ValueError(
                f"the model must return logits of shape {want} for labels of shape "
                f"{tuple(y.shape)}, got {tuple(logits.shape)}"
            )
        k = logits.shape[-1]
        bad = (y < 0) | (y >= k)
        if bool(bad.any()):
            raise ValueError(
                f"labels must lie in [0, {k}) for a model with {k} outputs: samples "
                f"{_names(batch.index, _rows(bad))} have labels {y[bad][:5].tolist()}"
            )

    def loss_shape(self, losses: torch.Tensor, batch: Batch) -> None:
        n = len(batch.y)
        per_position = losses.ndim == 2 and losses.shape[0] == n
        if losses.shape != (n,) and not per_position:
            raise ValueError(
                f"loss_fn must return one loss per sample, shape ({n},), or one per position, "
                f"shape ({n}, T), got {tuple(losses.shape)}"
            )

    def finite(
        self, losses: torch.Tensor, loss: torch.Tensor, batch: Batch, ctx: TrainContext
    ) -> None:
        if math.isfinite(loss.item()):  # one host sync per step, before the weights move
            return
        bad = _rows(~torch.isfinite(losses.detach()))
        who = (
            f"samples {_names(batch.index, bad)}"
            if len(bad)
            else "a penalty (every per-sample loss is finite)"
        )
        raise FloatingPointError(
            f"training loss became non-finite in epoch {ctx.epoch} at {who}; the weights "
            f"before this step are intact. Lower lr (now {ctx.config.lr}) or check those samples"
        )


def _rows(flags: torch.Tensor) -> torch.Tensor:
    """The batch rows (CPU LongTensor) where ``flags`` (B,) or (B, T) holds any True."""
    return flags.reshape(len(flags), -1).any(dim=1).nonzero().flatten().cpu()


def _names(index: torch.Tensor | None, where: torch.Tensor | None = None) -> str:
    if index is None:
        return "(no index: IterableDataset)"
    chosen = index if where is None else index[where]
    shown = chosen[:5].tolist()
    more = f" and {len(chosen) - 5} more" if len(chosen) > 5 else ""
    return f"{shown}{more}"


def _expected_input(model: nn.Module) -> str:
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            return f"; the model's first Linear layer expects {layer.in_features} features"
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(layer)]
            return (
                f"; the model's first conv layer expects (B, {layer.in_channels}, "
                f"{', '.join(['*'] * dims)}) inputs"
            )
    return ""
