"""One fit/evaluate loop for every method: seeds, device, progress, callbacks, checkpoints.

Training data is held as tensors and batched by index (a fresh generator per epoch seeded by
``(seed, epoch)``), so the sample order of epoch ``e`` is the same whether or not the run was
interrupted, and callbacks receive each batch's dataset indices.

Under ``torchrun`` the same loop trains with DistributedDataParallel; the sharding, batch and
checkpoint rules are in :mod:`netprism.train.distributed`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netprism.core.dist import all_reduce_sum, block_range, rank_world
from netprism.core.dist import resolve as resolve_distributed
from netprism.core.seed import seed_everything
from netprism.core.validation import check_finite
from netprism.data.base import as_tensors
from netprism.io import ensure_writable_dir
from netprism.train import distributed as dist_train
from netprism.train.callbacks import BatchOutput, TrainContext
from netprism.train.checkpoint import (
    latest_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    rng_from_flat,
    rng_to_flat,
    save_checkpoint,
)
from netprism.train.config import TrainConfig
from netprism.train.device import resolve_device


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch metrics and the last epoch's."""

    history: list[dict[str, float]]
    resumed_from: int | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "resumed_from": self.resumed_from}


def fit(
    model: nn.Module,
    train: Any,
    config: TrainConfig | None = None,
    *,
    val: Any = None,
    callbacks: Sequence[Any] = (),
    distributed: bool | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` with cross-entropy.

    Parameters
    ----------
    model : nn.Module
        Maps a batch ``(B, *input_shape)`` to logits ``(B, K)``; trained in place.
    train : TensorDataset, Dataset, DataLoader or (x, y) tensors
        Training data; held in memory as tensors ``x`` (N, ...) and ``y`` (N,).
    config : TrainConfig, optional
    val : same types as ``train``, optional
        Evaluated after every epoch (``val_loss``, ``val_accuracy`` in the history).
    callbacks : sequence of Callback
        Objects with any of the :class:`~netprism.train.Callback` hooks.
    distributed : bool, optional
        ``None`` (default): train with DistributedDataParallel when launched by torchrun
        (the process group is started if needed) or when a multi-rank process group is
        already up; ``False``: train on this process alone even then; ``True``: require it.
        Distributed, ``config.batch_size`` is the global batch (``batch_size / world_size``
        per rank), every rank returns the same history, and only rank 0 writes checkpoints
        and shows progress (see :mod:`netprism.train.distributed`).

    Returns
    -------
    FitResult
        ``history[e]`` holds ``epoch``, ``loss``, ``accuracy``, ``lr`` (+ validation).

    Examples
    --------
    >>> import torch
    >>> x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    >>> out = fit(torch.nn.Linear(4, 2), (x, y), TrainConfig(epochs=1, progress=False))
    >>> len(out.history)
    1
    """
    config = config or TrainConfig()
    if config.checkpoint_path is not None:  # an unusable folder fails before any work
        ensure_writable_dir(config.checkpoint_path)
    x, y = _checked_tensors(train, "train")
    val_xy = None if val is None else _checked_tensors(val, "val")
    parallel = dist_train.use_distributed(distributed)
    rank, world = rank_world() if parallel else (0, 1)
    if parallel:
        dist_train.local_batch_size(config.batch_size, world)  # fail before any work
        dist_train.check_same_checkpointing(config.checkpoint_path is not None)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    device = dist_train.rank_device(device) if parallel else device
    model.to(device)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    ctx = (
        dist_train.DistTrainContext(
            model, optimizer, config, device, x, y, rank=rank, world_size=world
        )
        if parallel
        else TrainContext(model, optimizer, config, device, x, y)
    )
    resumed = _maybe_resume(ctx, scheduler, callbacks) if config.resume else None
    ddp = None
    if parallel:
        dist_train.check_same_epoch(ctx.epoch)
        ddp = dist_train.wrap(model, device)  # after resume: rank 0's weights are broadcast
    _call(callbacks, "on_fit_start", ctx)
    epochs = range(ctx.epoch, config.epochs)
    quiet = not config.progress or rank != 0
    bar = tqdm(epochs, desc="fit", unit="epoch", disable=quiet, leave=False)
    for epoch in bar:
        ctx.epoch = epoch
        metrics = _run_epoch(ctx, callbacks, ddp)
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if val_xy is not None:
            batch = max(256, config.batch_size)
            ev = evaluate(model, val_xy, batch_size=batch, device=device, distributed=parallel)
            metrics.update(val_loss=ev["loss"], val_accuracy=ev["accuracy"])
        _call(callbacks, "on_epoch_end", ctx, metrics)
        ctx.history.append(metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.3f}")
        if config.checkpoint_path is not None:
            if parallel:  # rank 0 writes; every rank learns whether it worked
                save = functools.partial(_save, ctx, scheduler, callbacks)
                dist_train.save_on_rank0(save, config.checkpoint_path)
            else:
                _save(ctx, scheduler, callbacks)
        if ctx.stop:
            break
    _call(callbacks, "on_fit_end", ctx)
    return FitResult(ctx.history, resumed)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 512,
    device: str | torch.device = "auto",
    distributed: bool | None = None,
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data``.

    Parameters
    ----------
    distributed : bool, optional
        ``None``: when a multi-rank process group is up, each rank scores a contiguous
        shard and the sums are all-reduced (every rank must hold the same model and data);
        ``False``: score everything here.

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float, "n": int}``.
    """
    x, y = _checked_tensors(data, "data")
    dev = resolve_device(device)
    parallel = resolve_distributed(distributed)
    first, stop = block_range(len(y), batch_size, *rank_world()) if parallel else (0, len(y))
    was_training = model.training
    model.eval().to(dev)
    total_loss, correct = 0.0, 0
    for start in range(first, stop, batch_size):
        end = min(start + batch_size, stop)
        xb, yb = x[start:end].to(dev), y[start:end].to(dev)
        logits = model(xb)
        total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(dim=1) == yb).sum())
    model.train(was_training)
    if parallel:
        sums = all_reduce_sum(torch.tensor([total_loss, float(correct)], dtype=torch.float64))
        total_loss, correct = float(sums[0]), int(sums[1])
    n = len(y)
    return {"loss": total_loss / n, "accuracy": correct / n, "n": n}


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


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


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of ``epoch``: a permutation depending only on ``(seed, epoch)``."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def _run_epoch(ctx: TrainContext, callbacks: Sequence[Any], ddp: Any = None) -> dict[str, float]:
    _call(callbacks, "on_epoch_start", ctx)
    model, opt, cfg = ctx.model, ctx.optimizer, ctx.config
    order = epoch_order(len(ctx.y), cfg.seed, ctx.epoch)
    if ddp is not None:
        assert isinstance(ctx, dist_train.DistTrainContext)
        total_loss, correct = dist_train.run_epoch(ctx, ddp, order, callbacks, _call)
        return _epoch_metrics(ctx, total_loss, correct)
    model.train()
    total_loss, correct = 0.0, 0
    for index in order.split(cfg.batch_size):
        xb, yb = ctx.x[index].to(ctx.device), ctx.y[index].to(ctx.device)
        logits = model(xb)  # (B, K)
        losses = F.cross_entropy(
            logits, yb, reduction="none", label_smoothing=cfg.label_smoothing
        )  # (B,)
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        out = BatchOutput(index, logits.detach(), yb, losses.detach())
        _call(callbacks, "on_batch_end", ctx, out)
        total_loss += float(out.loss.sum())
        correct += int((out.logits.argmax(dim=1) == yb).sum())
    return _epoch_metrics(ctx, total_loss, correct)


def _epoch_metrics(ctx: TrainContext, total_loss: float, correct: int) -> dict[str, float]:
    cfg = ctx.config
    if not math.isfinite(total_loss):
        raise FloatingPointError(
            f"training loss became non-finite in epoch {ctx.epoch}; lower lr (now {cfg.lr})"
        )
    n = len(ctx.y)
    return {"epoch": ctx.epoch, "loss": total_loss / n, "accuracy": correct / n}


def _call(callbacks: Iterable[Any], hook: str, *args: Any) -> None:
    # Callbacks may subclass Callback or just define the hooks they use (duck typing), so
    # lower layers (core's CurvatureTracker) need not import train.
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _checked_tensors(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_tensors(data)
    if len(x) == 0:
        raise ValueError(f"{name} is empty: expected at least one sample")
    if len(x) != len(y):
        raise ValueError(f"{name}: x and y lengths differ ({len(x)} vs {len(y)})")
    check_finite(x.float(), f"{name} inputs")
    if y.is_floating_point() or y.ndim != 1 or int(y.min()) < 0:
        raise ValueError(
            f"{name} labels must be a 1-D tensor of class indices >= 0, "
            f"got dtype {y.dtype}, shape {tuple(y.shape)}"
        )
    return x.float(), y.long()


def _save(ctx: TrainContext, scheduler: Any, callbacks: Sequence[Any]) -> None:
    opt_tensors, opt_meta = optimizer_to_flat(ctx.optimizer)
    rng_tensors, rng_meta = rng_to_flat()
    tensors = {f"model.{k}": v for k, v in ctx.model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    for i, cb in enumerate(callbacks):
        if hasattr(cb, "state_dict"):
            tensors.update({f"callback{i}.{k}": v for k, v in cb.state_dict().items()})
    meta = {
        "config": ctx.config.to_dict(),
        "history": ctx.history,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(),
        "rng": rng_meta,
    }
    assert ctx.config.checkpoint_path is not None
    save_checkpoint(ctx.config.checkpoint_path, ctx.epoch, tensors, meta)


def _maybe_resume(ctx: TrainContext, scheduler: Any, callbacks: Sequence[Any]) -> int | None:
    assert ctx.config.checkpoint_path is not None
    found = latest_checkpoint(ctx.config.checkpoint_path)
    if found is None:
        return None
    tensors, meta = found
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    ctx.model.load_state_dict(model_state)
    optimizer_from_flat(ctx.optimizer, tensors, meta["optimizer"])
    scheduler.load_state_dict(meta["scheduler"])
    rng_from_flat(tensors, meta["rng"])
    for i, cb in enumerate(callbacks):
        prefix = f"callback{i}."
        if hasattr(cb, "load_state_dict"):
            cb.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
    ctx.history = list(meta["history"])
    ctx.epoch = int(meta["epoch"]) + 1
    return int(meta["epoch"])
