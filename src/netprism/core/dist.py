"""Collective helpers the lenses share when a ``torch.distributed`` process group is up.

Every helper is a no-op (or the identity) when no process group is initialized or it has a
single rank, so the lenses call them unconditionally.  Who *starts* the process group is the
training layer's business (:mod:`netprism.train.distributed`); core only uses one that exists.

Inside ``with local():`` a rank works alone: every helper (and every netprism function that
would go distributed automatically) behaves as without a process group.  Experiments use it
to hand whole runs to ranks (run ``i`` on rank ``i % world_size``).

Collectives run on the CPU under gloo and on the current CUDA device under nccl; results come
back on the device of the input.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

_LOCAL: contextvars.ContextVar[bool] = contextvars.ContextVar("netprism_local", default=False)


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Inside the block this rank works alone: :func:`rank_world` is ``(0, 1)``.

    Examples
    --------
    >>> with local():
    ...     is_distributed()
    False
    """
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def in_local() -> bool:
    """True inside :func:`local`."""
    return _LOCAL.get()


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one (or
    inside :func:`local`).

    Examples
    --------
    >>> rank_world()
    (0, 1)
    """
    if not _LOCAL.get() and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialized."""
    return rank_world()[1] > 1


def resolve(flag: bool | None) -> bool:
    """Whether a lens runs distributed: ``None`` means "when a multi-rank group is up"."""
    if flag is None:
        return is_distributed()
    if flag and not is_distributed():
        raise RuntimeError(
            "distributed=True needs an initialized torch.distributed process group with more "
            f"than one rank, got world size {rank_world()[1]}"
        )
    return bool(flag)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of ``t`` over ranks (a new tensor, on ``t``'s device)."""
    if not is_distributed():
        return t.clone()
    buf = t.detach().to(_comm_device()).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def barrier() -> None:
    """Wait until every rank gets here (nothing without a multi-rank group)."""
    if is_distributed():
        all_reduce_sum(torch.zeros(1))


def broadcast_int(value: int, src: int = 0) -> int:
    """Rank ``src``'s ``value`` on every rank."""
    if not is_distributed():
        return int(value)
    buf = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(buf, src=src)
    return int(buf.item())


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows in rank order: ``(n_0 + n_1 + ..., *rest)``.

    Ranks may hold different numbers of rows (0 included); trailing shapes and dtypes must
    agree.  Rows are padded to the largest count for the all-gather and trimmed after.
    """
    if not is_distributed():
        return local
    _, world = rank_world()
    dev = _comm_device()
    counts = torch.zeros(world, dtype=torch.int64, device=dev)
    counts[dist.get_rank()] = len(local)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    top = int(counts.max())
    padded = torch.zeros((top, *local.shape[1:]), dtype=local.dtype, device=dev)
    padded[: len(local)] = local.to(dev)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    rows = torch.cat([p[: int(c)] for p, c in zip(parts, counts.tolist())])
    return rows.to(local.device)


def gather_strided(local: torch.Tensor, total: int) -> torch.Tensor:
    """Undo a strided shard: rank ``k`` holds positions ``k, k + W, k + 2W, ...`` of a
    padded sequence, all ranks the same count ``b``; returns the first ``total`` positions
    ``(total, *rest)`` in order."""
    if not is_distributed():
        return local[:total]
    _, world = rank_world()
    dev = _comm_device()
    buf = local.detach().to(dev).contiguous()
    parts = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(parts, buf)
    stacked = torch.stack(parts, dim=1)  # (b, W, *rest): row i of rank k is position i*W + k
    return stacked.reshape(-1, *local.shape[1:])[:total].to(local.device)


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * rank_world()[1]
    dist.all_gather_object(out, obj)
    return out


def block_range(n: int, block: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous shard ``[start, stop)`` of ``n`` items for ``rank``, cut at multiples of
    ``block`` so that every rank's blocks are blocks of the single-process run.

    Examples
    --------
    >>> [block_range(10, 4, r, 2) for r in range(2)]
    [(0, 8), (8, 10)]
    """
    n_blocks = -(-n // block)
    per = -(-n_blocks // world)
    return min(rank * per * block, n), min((rank + 1) * per * block, n)
