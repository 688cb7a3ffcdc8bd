"""Data-parallel training under ``torchrun``: process group, DDP and the sharded epoch.

Launch any script or the CLI with ``torchrun --nproc-per-node N ...``; :func:`netprism.train.fit`
then trains with :class:`~torch.nn.parallel.DistributedDataParallel` and gives the same result
as single-process training up to floating-point reduction order.

Design
------
- **Process group.**  :func:`init_from_env` starts the default group from torchrun's
  environment (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) with
  nccl when CUDA is available and gloo otherwise.  Whoever creates the group owns it: the
  group is destroyed at interpreter exit (``atexit``) when netprism created it, and never when
  the caller did.  ``fit`` leaves it up between calls so later fits and the distributed lenses
  reuse it.  Worker processes of a ``multiprocessing`` pool inherit torchrun's environment but
  are not ranks; they never join.
- **Sampler.**  Rank 0's plan of the epoch (the global batches of dataset indices: the
  user's ``DataLoader`` sampler, or ``epoch_order(N, seed, epoch)`` cut into batches of
  ``config.batch_size``) is sent to every rank.  Within each global batch,
  rank ``k`` takes positions ``k, k + W, ...`` (strided, as ``DistributedSampler``), so the
  *global* batch equals the single-process batch and each rank holds ``batch_size / W``
  samples (``batch_size`` must be divisible by ``W``).  A short last batch is padded to a
  multiple of ``W`` by repeating its first samples with weight 0.
- **Loss.**  Each rank back-propagates ``sum(w * loss) * W / r`` (``r`` real samples in the
  global batch); DDP's gradient average then equals the single-process batch mean.
- **Metrics and callbacks.**  Each step's logits and per-sample losses are all-gathered back
  into global-batch order, so every rank's callbacks see exactly what single-process training
  shows them and every rank computes the same history.  Validation is sharded and summed.
- **Checkpoints.**  Only rank 0 writes; every rank resumes from the newest checkpoint (the
  folder must be shared) and the ranks check that they resumed the same epoch.

Dropout and batch-norm statistics are per rank, so models using them match single-process
training in distribution only.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from netprism.core.dist import (
    all_gather_object,
    all_reduce_sum,
    broadcast_int,
    gather_strided,
    in_local,
    is_distributed,
    rank_world,
)
from netprism.train.callbacks import BatchOutput, TrainContext
from netprism.train.step import BatchChecks, LossFn, call_hooks, train_step

__all__ = [
    "init_from_env",
    "is_main_process",
    "launched_by_torchrun",
    "local_batch_size",
    "use_distributed",
]

DEFAULT_TIMEOUT = timedelta(minutes=30)


def launched_by_torchrun() -> bool:
    """True in a process that torchrun started as one of ``WORLD_SIZE > 1`` ranks.

    A ``multiprocessing`` child (a worker pool) inherits the environment but is not a rank.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return False
    return world > 1 and "RANK" in os.environ and multiprocessing.parent_process() is None


def is_main_process() -> bool:
    """True on rank 0, or when not distributed (the process that prints and writes files)."""
    if is_distributed():
        return rank_world()[0] == 0
    if launched_by_torchrun():
        return os.environ.get("RANK", "0") == "0"
    return True


def init_from_env(timeout: timedelta = DEFAULT_TIMEOUT) -> bool:
    """Initialize the default process group from torchrun's environment if needed.

    Returns
    -------
    bool
        True when this call created the group (it is then destroyed at interpreter exit);
        False when one already existed or the process was not launched by torchrun.
    """
    if not dist.is_available() or dist.is_initialized() or not launched_by_torchrun():
        return False
    if in_local():  # a rank working alone must not start a (collective) rendezvous
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timeout)
    atexit.register(_destroy)
    return True


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def use_distributed(flag: bool | None) -> bool:
    """Resolve ``fit``'s ``distributed`` argument, starting the group under torchrun."""
    if flag is False:
        return False
    init_from_env()
    if flag and not is_distributed():
        raise RuntimeError(
            "distributed=True needs torchrun (WORLD_SIZE > 1) or an initialized process group "
            f"with more than one rank, got world size {rank_world()[1]}"
        )
    return is_distributed()


def local_batch_size(batch_size: int, world_size: int) -> int:
    """Samples per rank per step: the global ``batch_size`` split evenly over the ranks."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size={batch_size} must be divisible by the world size {world_size}: the "
            "global batch (all ranks together) equals the single-process batch, "
            f"so each rank takes batch_size / {world_size} samples"
        )
    return batch_size // world_size


def rank_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for CUDA, ``device`` otherwise."""
    if device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP around ``model`` (already on ``device``); rank 0's weights are broadcast."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def check_same_checkpointing(enabled: bool) -> None:
    """Every rank must agree on whether to checkpoint (saving involves a collective)."""
    flags = all_gather_object(bool(enabled))
    if len(set(flags)) > 1:
        raise ValueError(
            f"checkpoint_dir is set on ranks {[r for r, f in enumerate(flags) if f]} but not on "
            f"ranks {[r for r, f in enumerate(flags) if not f]}: give every rank the same "
            "(shared) checkpoint_dir, or none"
        )


def save_on_rank0(save: Callable[[], None], directory: object) -> None:
    """Run ``save`` on rank 0 and tell every rank whether it worked, so all fail together.

    The broadcast also keeps the other ranks from reading the folder before rank 0 wrote it.
    """
    rank = rank_world()[0]
    error: Exception | None = None
    if rank == 0:
        try:
            save()
        except Exception as err:  # re-raised below, after the other ranks are told
            error = err
    if broadcast_int(0 if error is not None else 1) == 0:
        if error is not None:
            raise error
        raise OSError(f"rank 0 could not save a checkpoint in {directory}; see rank 0's error")


def check_same_epoch(epoch: int) -> None:
    """Every rank must resume at the same epoch (the checkpoint folder must be shared)."""
    seen = torch.zeros(rank_world()[1], dtype=torch.int64)
    seen[rank_world()[0]] = epoch
    seen = all_reduce_sum(seen)
    if len(set(seen.tolist())) > 1:
        raise RuntimeError(
            f"ranks resumed from different epochs {seen.tolist()}: every rank must see the "
            "same checkpoint_dir (a shared folder)"
        )


def check_can_shard(source: Any, batch_size: int, world_size: int) -> None:
    """Refuse data that cannot be sharded; ``batch_size`` must split evenly over the ranks
    for data that ``fit`` batches itself (a ``DataLoader``'s own batches are padded)."""
    if source.iterable:
        raise ValueError(
            "distributed training shards samples by index: an IterableDataset has none; "
            "pass a map-style Dataset or a DataLoader over one"
        )
    if getattr(source, "user_loader", None) is None:
        local_batch_size(batch_size, world_size)


def run_epoch(
    ctx: TrainContext,
    ddp: DistributedDataParallel,
    plan: list[torch.Tensor],
    callbacks: Sequence[Any],
    loss_fn: LossFn | None,
    checks: BatchChecks,
) -> tuple[float, int, int]:
    """One sharded epoch over ``plan`` (global batches of dataset indices); returns the
    summed loss, correct count and sample count of the whole epoch (equal on every rank)."""
    world, rank = ctx.world_size, ctx.rank
    plan = [torch.as_tensor(b, dtype=torch.long) for b in all_gather_object(plan)[0]]
    shares = []
    for index in plan:  # the single-process global batch (r,)
        r = len(index)
        padded = torch.cat([index, index[torch.arange((-r) % world) % r]])  # (ceil(r/W)*W,)
        weight = (torch.arange(len(padded)) < r).float()
        shares.append((index, weight[rank::world], padded[rank::world]))  # strided
    ddp.train()
    total_loss, correct, count = 0.0, 0, 0
    batches = ctx.data.load([mine for _, _, mine in shares])
    for (index, weight, _), batch in zip(shares, batches):
        r = len(index)
        batch = batch.to(ctx.device)
        # DDP averages gradients over W ranks: scaling by W / r makes that average the mean
        # over the r real samples, as the single-process loss.mean().
        out = train_step(
            ctx, ddp, batch, callbacks, loss_fn, checks,
            weight=weight.to(ctx.device), scale=world / r,
        )  # fmt: skip
        cols = [out.logits, out.loss.unsqueeze(1), out.y.unsqueeze(1).to(out.logits.dtype)]
        full = gather_strided(torch.cat(cols, dim=1), r)  # (r, K+2) in global-batch order
        y = full[:, -1].round().long()
        out = BatchOutput(index, full[:, :-2], y, full[:, -2])
        call_hooks(callbacks, "on_batch_end", ctx, out)
        total_loss += float(out.loss.sum())
        correct += int((out.logits.argmax(dim=1) == out.y).sum())
        count += r
        if ctx.seen is not None:
            ctx.seen[index] = True
    return total_loss, correct, count
