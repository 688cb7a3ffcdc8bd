"""The training engine: every model in netprism is trained by :func:`fit`.

``fit`` streams the training data every epoch (a ``DataLoader`` with the user's shuffling,
workers, ``pin_memory`` and random augmentation; in-memory tensors are sliced by index, the
fast path), and every batch carries its samples' dataset indices, so per-sample records land
at the right sample whatever the order (:mod:`netprism.train.data`).  Methods plug in through
``loss_fn``, ``output_fn`` and the callback hooks (``on_batch_start``, ``penalty``,
``on_after_backward``, ``on_after_step``, ...; see :class:`~netprism.train.Callback`) instead
of copying the loop.  Device, seeds, progress, checkpoints and resume are handled here.

Under ``torchrun`` the same loop trains with DistributedDataParallel; the sharding, batch and
checkpoint rules are in :mod:`netprism.train.distributed`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from netprism.core.dist import all_reduce_sum, block_range, rank_world
from netprism.core.dist import resolve as resolve_distributed
from netprism.core.outputs import OutputFn, as_logits
from netprism.core.seed import seed_everything
from netprism.io import ensure_writable_dir
from netprism.train import distributed as dist_train
from netprism.train.callbacks import TrainContext
from netprism.train.config import TrainConfig
from netprism.train.data import BatchKeys, Order, Source, epoch_order, make_source
from netprism.train.device import resolve_device
from netprism.train.optim import OptimizerFactory, SchedulerFactory, make_optimizer, make_scheduler
from netprism.train.resume import maybe_resume as _maybe_resume
from netprism.train.resume import save as _save
from netprism.train.step import (
    BatchChecks,
    LossFn,
    call_hooks,
    cross_entropy,
    n_correct,
    train_step,
)

__all__ = ["FitResult", "epoch_order", "evaluate", "fit", "make_optimizer", "make_scheduler"]


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch metrics, the last epoch's, and coverage.

    ``seen`` (N,) bool marks the samples training drew at least once (``None`` for an
    ``IterableDataset``); ``drop_last`` or a subset sampler leaves some ``False``.
    """

    history: list[dict[str, float]]
    resumed_from: int | None = None
    seen: torch.Tensor | None = None

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
    loss_fn: LossFn | None = None,
    output_fn: OutputFn | None = None,
    score_data: Any = None,
    batch_keys: BatchKeys | None = None,
    order: Order | None = None,
    optimizer: OptimizerFactory | None = None,
    scheduler: SchedulerFactory | None = None,
    reseed: bool = True,
    distributed: bool | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` (cross-entropy unless ``loss_fn`` says otherwise).

    Parameters
    ----------
    model : nn.Module
        Maps a batch ``(B, *input_shape)`` to logits ``(B, K)`` (a sequence model: ``(B, T, K)``
        against labels ``(B, T)``, one cross-entropy per position), or to a tuple (logits
        first), a dict with ``"logits"`` or an object with ``.logits``; trained in place.
    train : DataLoader, Dataset, IterableDataset, TensorDataset or (x, y) tensors
        Streamed every epoch.  A ``DataLoader`` keeps its sampler (shuffling), batch size,
        workers, collate function and ``pin_memory``; any other data is batched by
        ``config.batch_size`` in the order ``order(epoch)`` (default
        :func:`~netprism.train.data.epoch_order`).  Items are ``(x, y)``, ``(x, y, index)``
        or dicts (``batch_keys``).
    config : TrainConfig, optional
    val : same types as ``train``, optional
        Evaluated after every epoch (``val_loss``, ``val_accuracy`` in the history).
    callbacks : sequence of Callback
        Objects with any of the :class:`~netprism.train.Callback` hooks.
    loss_fn : callable, optional
        ``loss_fn(output, batch) -> (B,)`` per-sample losses (or ``(B, T)`` per-position
        losses) from the model's raw output and the :class:`~netprism.train.data.Batch`; the
        step minimises their mean.  Default: cross-entropy on the logits.
    output_fn : callable, optional
        Model output -> logits ``(B, K)`` (metrics, callbacks); default
        :func:`~netprism.core.outputs.as_logits`.
    score_data : same types as ``train``, optional
        What per-sample callbacks score after each epoch, in index order: e.g. the same
        dataset without random augmentation.  Default: the training data itself.
    batch_keys : BatchKeys, optional
        Names of the input/label/index entries of dict items.
    order : callable, optional
        For data that is not a ``DataLoader``: ``order(epoch)`` returns the epoch's
        permutation ``(N,)`` (cut into batches of ``config.batch_size``) or its whole plan,
        a list of index batches (uneven or repeated batches allowed; samples it never draws
        raise no warning, e.g. random windows of a corpus).
    optimizer : callable, optional
        ``optimizer(params) -> Optimizer`` over the trainable parameters, replacing
        ``config.optimizer`` (and its ``lr``, ``momentum``, ``weight_decay``).
    scheduler : callable, optional
        ``scheduler(optimizer) -> LRScheduler`` stepped once per epoch, replacing
        ``config.scheduler``.
    reseed : bool
        Seed the global RNGs with ``config.seed`` first (``False``: continue the caller's
        random stream, e.g. one stream across several fits).
    distributed : bool, optional
        ``None`` (default): train with DistributedDataParallel when launched by torchrun
        (the process group is started if needed) or when a multi-rank process group is
        already up; ``False``: train on this process alone even then; ``True``: require it.
        Distributed, the global batch is split over the ranks (see
        :mod:`netprism.train.distributed`).

    Returns
    -------
    FitResult
        ``history[e]`` holds ``epoch``, ``loss``, ``accuracy``, ``lr`` (+ validation);
        ``seen`` marks the samples that were trained on.

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
    keys = batch_keys or BatchKeys()
    source = make_source(
        train, batch_size=config.batch_size, seed=config.seed, order=order, keys=keys, name="train"
    )
    score = _score_source(source, score_data, config, keys)
    val_source = None if val is None else make_source(val, keys=keys, name="val")
    _check_index_needs(source, callbacks)
    parallel = dist_train.use_distributed(distributed)
    rank, world = rank_world() if parallel else (0, 1)
    if parallel:
        dist_train.check_can_shard(source, config.batch_size, world)  # fail before any work
        dist_train.check_same_checkpointing(config.checkpoint_path is not None)
    if reseed:
        seed_everything(config.seed)
    device = resolve_device(config.device)
    device = dist_train.rank_device(device) if parallel else device
    model.to(device)
    opt = make_optimizer(model, config, optimizer)
    sched = scheduler(opt) if scheduler is not None else make_scheduler(opt, config)
    n = source.num_samples
    ctx = TrainContext(
        model, opt, config, device, source, score, output_fn or as_logits,
        num_samples=n, seen=None if n is None else torch.zeros(n, dtype=torch.bool),
        rank=rank, world_size=world,
    )  # fmt: skip
    resumed = _maybe_resume(ctx, sched, callbacks) if config.resume else None
    ddp = None
    if parallel:
        dist_train.check_same_epoch(ctx.epoch)
        ddp = dist_train.wrap(model, device)  # after resume: rank 0's weights are broadcast
    call_hooks(callbacks, "on_fit_start", ctx)
    quiet = not config.progress or rank != 0
    bar = tqdm(
        range(ctx.epoch, config.epochs), desc="fit", unit="epoch", disable=quiet, leave=False
    )
    checks = BatchChecks(model)
    ran = 0
    for epoch in bar:
        ctx.epoch = epoch
        metrics = _run_epoch(ctx, callbacks, loss_fn, checks, ddp)
        checks.active, ran = False, ran + 1
        metrics["lr"] = opt.param_groups[0]["lr"]
        sched.step()
        if val_source is not None:
            ev = evaluate(
                model, val_source, batch_size=max(256, config.batch_size), device=device,
                distributed=parallel, output_fn=output_fn,
            )  # fmt: skip
            metrics.update(val_loss=ev["loss"], val_accuracy=ev["accuracy"])
        call_hooks(callbacks, "on_epoch_end", ctx, metrics)
        ctx.history.append(metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.3f}")
        _checkpoint(ctx, sched, callbacks, parallel)
        if ctx.stop:
            break
    call_hooks(callbacks, "on_fit_end", ctx)
    if ran and order is None:  # a plan the caller wrote may leave samples out on purpose
        _warn_unseen(ctx)
    return FitResult(ctx.history, resumed, ctx.seen)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 512,
    device: str | torch.device = "auto",
    distributed: bool | None = None,
    output_fn: OutputFn | None = None,
    batch_keys: BatchKeys | None = None,
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data`` (streamed in index order).

    Parameters
    ----------
    data : same types as :func:`fit`'s ``train``
    distributed : bool, optional
        ``None``: when a multi-rank process group is up, each rank scores a contiguous
        shard and the sums are all-reduced (every rank must hold the same model and data);
        ``False``: score everything here.
    output_fn : callable, optional
        Model output -> logits (default :func:`~netprism.core.outputs.as_logits`).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float, "n": int}``: means over the ``n`` predictions
        (samples, or every position of ``(B, T, K)`` sequence logits).
    """
    source = data if _is_source(data) else make_source(data, keys=batch_keys, name="data")
    dev = resolve_device(device)
    parallel = resolve_distributed(distributed) and source.num_samples is not None
    n_all = source.num_samples
    first, stop = (0, n_all)
    if parallel:
        assert n_all is not None
        first, stop = block_range(n_all, batch_size, *rank_world())
    to_logits = output_fn or as_logits
    was_training = model.training
    model.eval().to(dev)
    total_loss, correct, count = 0.0, 0, 0
    for batch in source.ordered(batch_size, first, stop):
        batch = batch.to(dev)
        logits = to_logits(model(batch.x))  # (B, K) or (B, T, K)
        total_loss += float(cross_entropy(logits, batch.y, reduction="sum"))
        correct += int(n_correct(logits, batch.y))
        count += batch.y.numel()
    model.train(was_training)
    if parallel:
        local = torch.tensor([total_loss, float(correct), float(count)], dtype=torch.float64)
        sums = all_reduce_sum(local)
        total_loss, correct, count = float(sums[0]), int(sums[1]), int(sums[2])
    if count == 0:
        raise ValueError("data is empty: expected at least one sample")
    return {"loss": total_loss / count, "accuracy": correct / count, "n": count}


def _run_epoch(
    ctx: TrainContext,
    callbacks: Sequence[Any],
    loss_fn: LossFn | None,
    checks: BatchChecks,
    ddp: Any = None,
) -> dict[str, float]:
    call_hooks(callbacks, "on_epoch_start", ctx)
    plan = ctx.data.plan(ctx.epoch)
    if ddp is not None:
        total, correct, count = dist_train.run_epoch(ctx, ddp, plan, callbacks, loss_fn, checks)
        return _epoch_metrics(ctx, total / max(count, 1), correct, count)
    ctx.model.train()
    total, n_losses, correct, n_predicted = 0.0, 0, 0, 0
    non_blocking = bool(getattr(ctx.data, "pin_memory", False))
    for batch in ctx.data.load(plan):
        batch = batch.to(ctx.device, non_blocking=non_blocking)
        out = train_step(ctx, ctx.model, batch, callbacks, loss_fn, checks)
        call_hooks(callbacks, "on_batch_end", ctx, out)
        total += float(out.loss.sum())  # the step already synchronised (finiteness check)
        n_losses += out.loss.numel()  # samples, or positions of a sequence
        correct += int(n_correct(out.logits, out.y))
        n_predicted += out.logits.shape[:-1].numel()
    if ctx.seen is not None and plan:  # every planned batch was drawn
        ctx.seen[torch.cat(plan)] = True
    return _epoch_metrics(ctx, total / max(n_losses, 1), correct, n_predicted)


def _epoch_metrics(
    ctx: TrainContext, mean_loss: float, correct: int, count: int
) -> dict[str, float]:
    if count == 0:
        raise ValueError(
            f"epoch {ctx.epoch} drew no batch: the loader or sampler yielded nothing "
            "(an empty dataset, or drop_last=True with fewer samples than one batch)"
        )
    return {"epoch": ctx.epoch, "loss": mean_loss, "accuracy": correct / count}


def _score_source(source: Source, score_data: Any, config: TrainConfig, keys: BatchKeys) -> Source:
    if score_data is None:
        return source
    score = make_source(score_data, batch_size=config.batch_size, keys=keys, name="score_data")
    if score.num_samples != source.num_samples:
        raise ValueError(
            f"score_data must hold the same samples as train, index for index: it has "
            f"{score.num_samples} samples, train has {source.num_samples}"
        )
    return score


def _check_index_needs(source: Source, callbacks: Sequence[Any]) -> None:
    if not source.iterable:
        return
    needy = [type(cb).__name__ for cb in callbacks if getattr(cb, "needs_index", False)]
    if needy:
        raise ValueError(
            f"{', '.join(needy)} keep per-sample records by dataset index, but an "
            "IterableDataset has no stable index: pass a map-style Dataset (with __len__ and "
            "__getitem__) or a DataLoader over one"
        )


def _warn_unseen(ctx: TrainContext) -> None:
    if ctx.seen is None or bool(ctx.seen.all()):
        return
    missing = int((~ctx.seen).sum())
    warnings.warn(
        f"{missing} of {len(ctx.seen)} samples were never drawn for training (drop_last=True "
        "or a sampler that skips samples); FitResult.seen marks them",
        RuntimeWarning,
        stacklevel=3,
    )


def _checkpoint(ctx: TrainContext, sched: Any, callbacks: Sequence[Any], parallel: bool) -> None:
    if ctx.config.checkpoint_path is None:
        return
    if parallel:  # rank 0 writes; every rank learns whether it worked
        save = functools.partial(_save, ctx, sched, callbacks)
        dist_train.save_on_rank0(save, ctx.config.checkpoint_path)
    else:
        _save(ctx, sched, callbacks)


def _is_source(data: Any) -> bool:
    return all(hasattr(data, a) for a in ("plan", "load", "ordered", "num_samples"))
