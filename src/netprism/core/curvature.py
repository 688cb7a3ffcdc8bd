"""Per-sample input-loss curvature (the curvature lens).

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831).  For each sample the Hessian of its loss with respect
to its input, ``H = d^2 l(f(x), y) / dx^2``, is probed with Hutchinson's estimator: for
Rademacher ``v``, ``E ||H v||^2 = Tr(H^2)`` and ``E v^T H v = Tr(H)``.

Two Hessian-vector-product back ends:

- ``"finite_difference"`` (the paper's code): ``H v ~ (grad l(x + h v) - grad l(x)) / h``.
  Unlike the official code, the clean gradient ``grad l(x)`` is computed once per batch and
  reused across probes (one forward + one backward per probe instead of two forwards + one
  backward; several probes of a small-input batch share one stacked pass), the loss is
  sum-reduced (the official mean reduction scales each sample by 1/B and the short last
  batch differently), and the difference is divided by ``h`` (the official score
  is ``h`` times ours: same ranking).
- ``"hvp"``: exact double back-propagation.  On ReLU networks the exact input Hessian is only
  the Gauss-Newton term, while a finite ``h`` also sees activation-pattern changes, so the two
  back ends agree only on smooth models.

Probes are a deterministic function of ``(seed, sample id, probe index)``, so a sample gets the
same probes whether scored alone or inside any batch.

Distributed (a multi-rank ``torch.distributed`` group is up): each rank scores a contiguous
shard of whole batches -- the same batches a single process would form -- and the scores are
all-gathered back into dataset order, so they equal the single-process scores sample by sample.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netprism.core import dist
from netprism.core.outputs import OutputFn
from netprism.core.per_sample import check_batch, eval_mode, loss_input_grad

BACKENDS = ("finite_difference", "hvp")
#: Finite differences stack probes into one pass while the stacked inputs hold at most this many
#: values (1 MiB in float32): small inputs (tabular data, 8x8 or 16x16 images) get larger, faster
#: matrix products (scoring 7-23 % faster in 100-epoch runs of digits' MLP and LeNet, one CPU
#: thread); 2^20 slowed a 16x16 LeNet (its activations leave the cache); a 256-image CIFAR
#: batch (786,432 values) keeps one probe per pass.
STACK_INPUT_VALUES = 2**18
_MASK32 = 0xFFFFFFFF


@dataclass
class CurvatureScores:
    """Per-sample curvature estimates, each a tensor of shape ``(N,)``.

    Attributes
    ----------
    norm : Tensor (N,)
        Mean over probes of ``||H v||`` (the official code's memorization score).
    sq_norm : Tensor (N,)
        Mean of ``||H v||^2``, an unbiased estimate of ``Tr(H^2)`` (the paper's formula).
    trace : Tensor (N,)
        Mean of ``v^T H v``, an unbiased estimate of ``Tr(H)`` (signed).
    """

    norm: torch.Tensor
    sq_norm: torch.Tensor
    trace: torch.Tensor

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"norm": self.norm, "sq_norm": self.sq_norm, "trace": self.trace}


def input_curvature(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_probes: int = 10,
    h: float = 1e-3,
    backend: str = "finite_difference",
    seed: int | None = None,
    sample_ids: torch.Tensor | None = None,
    batch_size: int = 256,
    distributed: bool | None = None,
    output_fn: OutputFn | None = None,
) -> CurvatureScores:
    """Hutchinson estimates of each sample's input-loss curvature.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, *input_shape)`` to logits ``(B, K)``; scored in eval mode (mode restored).
    x : Tensor (N, *input_shape)
    y : LongTensor (N,)
    n_probes : int
        Rademacher probes per sample (the paper uses 10).
    h : float
        Finite-difference step (ignored by ``backend="hvp"``).
    backend : {"finite_difference", "hvp"}
    seed : int, optional
        Seeds the probes; ``None`` draws one from torch's global generator.
    sample_ids : LongTensor (N,), optional
        Stable ids of the samples (e.g. dataset indices); probes depend on them, so a sample
        scores the same alone or in a batch.  Default ``arange(N)``.
    batch_size : int
        Samples per forward pass.
    distributed : bool, optional
        ``None``: shard across ranks when a multi-rank process group is up (every rank must
        pass the same model, data and seed); ``False``: score everything on this process.
    output_fn : callable, optional
        Model output -> logits (default :func:`~netprism.core.outputs.as_logits`).

    Returns
    -------
    CurvatureScores
        ``norm``, ``sq_norm`` and ``trace``, each ``(N,)`` on the CPU.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> s = input_curvature(net, torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), seed=0)
    >>> s.norm.shape, bool((s.sq_norm >= 0).all())
    (torch.Size([6]), True)
    """
    _check_args(n_probes, h, backend, batch_size)
    check_batch(x, y)
    ids = torch.arange(len(x)) if sample_ids is None else torch.as_tensor(sample_ids).long()
    if ids.shape != (len(x),):
        raise ValueError(f"sample_ids must have shape ({len(x)},), got {tuple(ids.shape)}")
    parallel = dist.resolve(distributed)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        seed = dist.broadcast_int(seed) if parallel else seed  # rank 0's draw everywhere
    first, stop = (
        dist.block_range(len(x), batch_size, *dist.rank_world()) if parallel else (0, len(x))
    )
    device = next(iter(model.parameters()), torch.empty(0)).device
    parts = []
    with eval_mode(model):
        for start in range(first, stop, batch_size):
            sl = slice(start, min(start + batch_size, stop))
            xb, yb = x[sl].to(device), y[sl].to(device)
            parts.append(
                _batch_curvature(model, xb, yb, ids[sl], n_probes, h, backend, seed, output_fn)
            )
    if not parallel:
        scores = CurvatureScores(*(torch.cat(p) for p in zip(*parts)))
    else:
        local = torch.stack([torch.cat(p) for p in zip(*parts)], dim=1) if parts else None
        rows = dist.gather_rows(torch.zeros(0, 3, dtype=torch.float64) if local is None else local)
        scores = CurvatureScores(*rows.T.contiguous())  # (N,) each, in dataset order
    warn_nonfinite(scores.norm, ids, model, "input_curvature")
    return scores


def warn_nonfinite(scores: torch.Tensor, ids: torch.Tensor, model: nn.Module, where: str) -> bool:
    """Warn (``RuntimeWarning``) when curvature ``scores`` (N,) are NaN or infinite, naming
    the first samples (by ``ids`` (N,)) and the model's non-finite parameters, if any (the
    usual cause: a diverged model); returns whether it warned.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_nonfinite(torch.tensor([1.0, float("nan")]), torch.tensor([7, 8]),
    ...                    nn.Linear(2, 2), "test")
    True
    >>> "sample(s) [8]" in str(caught[0].message)
    True
    """
    bad = ~torch.isfinite(scores)
    if not bool(bad.any()):
        return False
    names = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    cause = (
        f"the model's parameters {names[:5]} hold NaN/inf (has training diverged?)"
        if names
        else "the model's parameters are finite; its outputs or input gradients overflowed"
    )
    warnings.warn(
        f"{where}: curvature is NaN/inf for {int(bad.sum())} of {len(scores)} samples, "
        f"sample(s) {ids[bad][:5].tolist()}{' ...' if int(bad.sum()) > 5 else ''}: {cause}",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def _check_args(n_probes: int, h: float, backend: str, batch_size: int) -> None:
    if not isinstance(n_probes, int) or isinstance(n_probes, bool) or n_probes < 1:
        raise ValueError(f"n_probes must be an int >= 1, got {n_probes!r}")
    if not isinstance(h, (int, float)) or not h > 0 or h != h or h == float("inf"):
        raise ValueError(f"h must be a finite float > 0, got {h!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _batch_curvature(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    ids: torch.Tensor,
    n_probes: int,
    h: float,
    backend: str,
    seed: int,
    output_fn: OutputFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores for one batch: ``(norm, sq_norm, trace)``, each ``(B,)`` on the CPU.

    Finite differences stack several probes into one forward and backward pass (see
    :data:`STACK_INPUT_VALUES`); each probe's sums are added in probe order, so the scores do
    not depend on how many probes share a pass.
    """
    exact = backend == "hvp"
    g0, x_leaf = loss_input_grad(
        model, x, y, create_graph=exact, output_fn=output_fn
    )  # (B, *input_shape)
    norm = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    sq_norm, trace = torch.zeros_like(norm), torch.zeros_like(norm)
    per_pass = 1 if exact else probes_per_pass(x)
    for first in range(0, n_probes, per_pass):
        probes = range(first, min(first + per_pass, n_probes))
        v = rademacher_stack(ids, probes, x.shape[1:], seed).to(device=x.device, dtype=x.dtype)
        if exact:
            (hv,) = torch.autograd.grad(g0, x_leaf, grad_outputs=v[0], retain_graph=True)
            hv = hv.unsqueeze(0)
        else:
            hv = _finite_difference_hv(model, x, y, g0, v, h, output_fn)
        hv_flat = hv.detach().flatten(2).double()  # (P, B, D)
        v_flat = v.flatten(2).double()
        for p in range(len(probes)):  # probe order: the same sums as one probe per pass
            sq = hv_flat[p].pow(2).sum(dim=1)
            norm += sq.sqrt()
            sq_norm += sq
            trace += (v_flat[p] * hv_flat[p]).sum(dim=1)
    return (norm / n_probes).cpu(), (sq_norm / n_probes).cpu(), (trace / n_probes).cpu()


def probes_per_pass(x: torch.Tensor) -> int:
    """How many probes of the batch ``x`` ``(B, *input_shape)`` share one pass: as many as keep
    the stacked inputs under :data:`STACK_INPUT_VALUES` values (at least one)."""
    return max(1, STACK_INPUT_VALUES // max(1, x.numel()))


def _finite_difference_hv(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    g0: torch.Tensor,
    v: torch.Tensor,
    h: float,
    output_fn: OutputFn | None,
) -> torch.Tensor:
    """``(grad l(x + h v) - grad l(x)) / h`` for the probes ``v`` ``(P, B, *input_shape)``,
    in one pass over the ``P * B`` shifted inputs; returns ``(P, B, *input_shape)``."""
    stacked = (x.unsqueeze(0) + h * v).flatten(0, 1)  # (P * B, *input_shape)
    g1, _ = loss_input_grad(model, stacked, y.repeat(len(v)), output_fn=output_fn)
    return (g1.view_as(v) - g0) / h


def rademacher(ids: torch.Tensor, probe: int, shape: Sequence[int], seed: int) -> torch.Tensor:
    """Rademacher probes (entries +-1) that depend only on ``(seed, id, probe, position)``.

    A counter-based hash (Wellons' ``lowbias32``) on int64 tensors, vectorized: no generator
    state, so a sample's probe does not depend on which batch it is in.

    Returns
    -------
    Tensor (len(ids), *shape), float32

    Examples
    --------
    >>> a = rademacher(torch.tensor([3, 7]), 0, (4,), seed=1)
    >>> torch.equal(a[1], rademacher(torch.tensor([7]), 0, (4,), seed=1)[0])
    True
    """
    return rademacher_stack(ids, [probe], shape, seed)[0]


def rademacher_stack(
    ids: torch.Tensor, probes: Sequence[int], shape: Sequence[int], seed: int
) -> torch.Tensor:
    """:func:`rademacher` for several probe indices at once: ``(len(probes), len(ids), *shape)``,
    row ``i`` equal to ``rademacher(ids, probes[i], shape, seed)``.

    Examples
    --------
    >>> ids = torch.tensor([3, 7])
    >>> torch.equal(rademacher_stack(ids, [0, 2], (4,), 1)[1], rademacher(ids, 2, (4,), 1))
    True
    """
    d = 1
    for s in shape:
        d *= int(s)
    probe = torch.tensor(list(probes), dtype=torch.int64)  # (P,)
    key = _hash32(torch.tensor([seed & _MASK32], dtype=torch.int64) ^ (probe * 0x9E3779B9))
    row = _hash32(key.unsqueeze(1) ^ _hash32(ids.long().cpu() & _MASK32))  # (P, B)
    pos = torch.arange(d, dtype=torch.int64)  # (D,)
    bits = _hash32(row.unsqueeze(2) ^ ((pos * 0x85EBCA6B) & _MASK32)) & 1  # (P, B, D)
    return (bits * 2 - 1).float().reshape(len(probe), len(ids), *shape)


def _hash32(x: torch.Tensor) -> torch.Tensor:
    # lowbias32 on values held in int64 and masked to 32 bits after each multiply.
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


class CurvatureTracker:
    """Training callback: scores the training set every ``every`` epochs and keeps the running
    epoch-average of each sample's curvature (the paper's memorization score).

    Scoring happens in eval mode after the epoch's last step, streaming the context's
    scoring data (``fit``'s ``score_data``, else the training set) in index order and in
    batches, so memory is O(batch + N); sample ids are dataset indices, so probes are
    repeatable and a shuffled loader cannot put a score on the wrong sample.
    In a distributed fit (``ctx.world_size > 1``) each rank scores a shard and every rank
    ends with the same, gathered scores.
    Works with :func:`netprism.train.fit` (it implements the ``on_epoch_end`` hook and
    ``state_dict`` / ``load_state_dict`` so a resumed run keeps its averages).

    Parameters
    ----------
    every : int
        Score at epochs ``0, every, 2*every, ...`` (0-based).
    n_probes, h, backend, batch_size
        As in :func:`input_curvature`.
    seed : int
        Probes of epoch ``e`` use seed ``seed + e`` (fresh probes each epoch).
    keep_history : bool
        Also keep every scored epoch's ``norm`` as ``history_`` (E, N).

    Examples
    --------
    >>> from netprism.train import TrainConfig, fit
    >>> x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    >>> tracker = CurvatureTracker(n_probes=2)
    >>> _ = fit(torch.nn.Linear(3, 2), (x, y), TrainConfig(epochs=2, progress=False),
    ...         callbacks=[tracker])
    >>> tracker.scores_.norm.shape, tracker.epochs_scored_
    (torch.Size([20]), 2)
    """

    needs_index = True  # fit refuses data without a stable sample index

    def __init__(
        self,
        *,
        every: int = 1,
        n_probes: int = 10,
        h: float = 1e-3,
        backend: str = "finite_difference",
        seed: int = 0,
        batch_size: int = 256,
        keep_history: bool = False,
    ) -> None:
        _check_args(n_probes, h, backend, batch_size)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.every, self.n_probes, self.h, self.backend = every, n_probes, h, backend
        self.seed, self.batch_size, self.keep_history = seed, batch_size, keep_history
        self._sums: torch.Tensor | None = None  # (3, N) float64: norm, sq_norm, trace
        self._history: list[torch.Tensor] = []
        self.epochs_scored_ = 0
        self.seconds_ = 0.0  # wall-clock time spent scoring

    def on_epoch_end(self, ctx: Any, metrics: dict[str, Any]) -> None:
        """Score the training set if this epoch is due; add the mean to ``metrics``."""
        if ctx.epoch % self.every:
            return
        start = time.perf_counter()
        scores = self._score_epoch(ctx)  # (3, N): norm, sq_norm, trace
        self._sums = scores if self._sums is None else self._sums + scores
        self.epochs_scored_ += 1
        if self.keep_history:
            self._history.append(scores[0].clone())  # not a view holding all 3 rows
        metrics["curvature_mean"] = float(scores[0].mean())
        self.seconds_ += time.perf_counter() - start

    def _score_epoch(self, ctx: Any) -> torch.Tensor:
        """Stream ``ctx.score_batches`` (index order, un-augmented) and write each sample's
        scores at its dataset index; a distributed fit scores one block per rank."""
        parallel = getattr(ctx, "world_size", 1) > 1
        out = torch.zeros(3, ctx.num_samples, dtype=torch.float64)
        args = (self.n_probes, self.h, self.backend, self.seed + ctx.epoch)
        with eval_mode(ctx.model):
            for batch in ctx.score_batches(self.batch_size, shard=parallel):
                x, y = batch.x.float().to(ctx.device), batch.y.to(ctx.device)
                part = _batch_curvature(ctx.model, x, y, batch.index, *args, ctx.output_fn)
                out[:, batch.index] = torch.stack(part)
        # every index is written by exactly one rank and is 0 elsewhere: the sum is exact
        out = dist.all_reduce_sum(out) if parallel else out
        where = f"CurvatureTracker, epoch {ctx.epoch}"
        warn_nonfinite(out[0], torch.arange(out.shape[1]), ctx.model, where)
        return out

    @property
    def scores_(self) -> CurvatureScores:
        """Per-sample scores averaged over the scored epochs."""
        if self._sums is None:
            raise RuntimeError("CurvatureTracker has not scored any epoch yet; train first")
        mean = self._sums / self.epochs_scored_
        return CurvatureScores(mean[0], mean[1], mean[2])

    @property
    def history_(self) -> torch.Tensor:
        """``norm`` of every scored epoch, ``(E, N)`` (needs ``keep_history=True``)."""
        if not self.keep_history:
            raise RuntimeError("history_ needs CurvatureTracker(keep_history=True)")
        return torch.stack(self._history) if self._history else torch.empty(0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that let a resumed run continue the averages."""
        state = {"epochs_scored": torch.tensor(self.epochs_scored_)}
        if self._sums is not None:
            state["sums"] = self._sums
        if self.keep_history and self._history:
            state["history"] = torch.stack(self._history)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.epochs_scored_ = int(state.get("epochs_scored", torch.tensor(0)))
        self._sums = state.get("sums")
        self._history = list(state["history"]) if "history" in state else []
