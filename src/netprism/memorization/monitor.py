"""Memorization scores for any training loop: call the monitor at each epoch's end.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831): a sample's memorization score is its input-loss
curvature averaged over training epochs.  :func:`~netprism.memorization.memorization_scores`
trains with netprism's engine; :class:`MemorizationMonitor` brings the same scores to a loop
you own (plain PyTorch, Lightning, Hugging Face).  After each epoch it scores the
un-augmented data in index order through the engine's streaming path, with the very
:class:`~netprism.core.curvature.CurvatureTracker` and
:class:`~netprism.memorization.dynamics.TrainingDynamics` that ``fit`` drives, so on the same
seed and recipe the scores equal ``memorization_scores``'.

Optionally, :meth:`MemorizationMonitor.observe` records every training batch's per-sample
loss at the samples' dataset indices: the cumulative sample loss of Ravikumar et al.,
"Towards Memorization Estimation: Fast, Formal and Free", ICML 2025, at no extra forward.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netprism.core import dist
from netprism.core.outputs import as_logits
from netprism.memorization.names import (
    DEFAULT_EVERY,
    DEFAULT_H,
    DEFAULT_N_PROBES,
    EPOCH_METHODS,
    TRAINING_LOSS_SCORES,
)
from netprism.memorization.scores import (
    MemorizationScores,
    _collect,
    check_methods,
    recorders,
)
from netprism.train import BatchKeys, make_source

TRAIN_LOSS = "train_loss"
CSL = TRAINING_LOSS_SCORES[0]


@dataclass
class _ScoringContext:
    """The part of :class:`~netprism.train.TrainContext` the per-sample callbacks read."""

    model: nn.Module
    device: torch.device
    output_fn: Callable[[Any], torch.Tensor]
    score: Any  # a netprism.train source
    num_samples: int
    epoch: int
    rank: int = 0
    world_size: int = 1

    def score_batches(self, batch_size: int, *, shard: bool = False) -> Iterator[Any]:
        """Every sample once in index order (this rank's block only with ``shard=True``)."""
        first, stop = 0, self.num_samples
        if shard and self.world_size > 1:
            first, stop = dist.block_range(self.num_samples, batch_size, self.rank, self.world_size)
        return self.score.ordered(batch_size, first, stop)


class MemorizationMonitor:
    """Curvature and training-dynamics scores for any training loop.

    Call :meth:`epoch_end` after every epoch (on every rank under torchrun), optionally
    :meth:`observe` after every training batch, and read :meth:`scores` at the end.

    Parameters
    ----------
    score_data : DataLoader, Dataset, TensorDataset or (x, y) tensors
        The training samples without random augmentation, index for index with the
        indices your training batches carry (``N`` samples); scored after each epoch in index
        order, one batch at a time.
    methods : sequence of str
        Any of :data:`~netprism.memorization.names.EPOCH_METHODS` (every score but CSL, which
        :meth:`observe` records).
    every, n_probes, h, backend, seed, batch_size
        Curvature settings (see :class:`~netprism.core.curvature.CurvatureTracker`);
        ``batch_size`` is also the batch of the dynamics pass.  Epoch ``e`` is scored when
        ``e % every == 0``; its probes use seed ``seed + e``.
    device : str or torch.device, optional
        Where score batches go; default: the device of the model's first parameter.
    output_fn : callable, optional
        Model output -> logits ``(B, K)`` (default :func:`~netprism.core.outputs.as_logits`).
    batch_keys : BatchKeys, optional
        Entry names of dict items.

    Examples
    --------
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> model = torch.nn.Linear(4, 3)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    >>> monitor = MemorizationMonitor((x, y), methods=("curvature", "loss"), n_probes=2)
    >>> for epoch in range(3):
    ...     for idx in torch.randperm(32).split(8):
    ...         logits = model(x[idx])
    ...         loss = torch.nn.functional.cross_entropy(logits, y[idx])
    ...         opt.zero_grad(); loss.backward(); opt.step()
    ...         monitor.observe(idx, logits, y[idx])
    ...     metrics = monitor.epoch_end(model, epoch)
    >>> s = monitor.scores()
    >>> s.names, s["curvature"].shape
    (['curvature', 'loss', 'csl', 'train_loss'], torch.Size([32]))
    """

    def __init__(
        self,
        score_data: Any,
        *,
        methods: Sequence[str] = EPOCH_METHODS,
        every: int = DEFAULT_EVERY,
        n_probes: int = DEFAULT_N_PROBES,
        h: float = DEFAULT_H,
        backend: str = "finite_difference",
        seed: int = 0,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        output_fn: Callable[[Any], torch.Tensor] | None = None,
        batch_keys: BatchKeys | None = None,
    ) -> None:
        methods = tuple(methods)
        if CSL in methods:
            raise ValueError(
                "the monitor reads CSL from your training batches: call monitor.observe(indices, "
                "logits, labels) after each batch and scores() adds 'csl'; leave it out of methods"
            )
        check_methods(methods, EPOCH_METHODS)
        self.methods = methods
        self.device = None if device is None else torch.device(device)
        self.output_fn = output_fn or as_logits
        self.source = make_source(score_data, keys=batch_keys, name="score_data")
        if self.source.num_samples is None:
            raise ValueError(
                "score_data needs a stable sample index: pass a map-style Dataset (with "
                "__len__ and __getitem__), a DataLoader over one or (x, y) tensors, not an "
                "IterableDataset"
            )
        self.num_samples: int = self.source.num_samples
        self.tracker, self.dynamics = recorders(
            methods, every=every, n_probes=n_probes, h=h, backend=backend, seed=seed,
            batch_size=batch_size, dynamics_batch_size=batch_size,
        )  # fmt: skip
        self.history_: list[dict[str, float]] = []
        n = self.num_samples
        self._loss_sum = torch.zeros(n, dtype=torch.float64)  # observed, merged over ranks
        self._loss_count = torch.zeros(n, dtype=torch.float64)
        self._pending_sum = torch.zeros(n, dtype=torch.float64)  # since the last epoch_end
        self._pending_count = torch.zeros(n, dtype=torch.float64)
        self._observed = False

    def epoch_end(self, model: nn.Module, epoch: int | None = None) -> dict[str, float]:
        """Score ``score_data`` (un-augmented, index order, streamed) with ``model``.

        Parameters
        ----------
        model : nn.Module
            The model after epoch ``epoch`` (a DistributedDataParallel wrapper is unwrapped).
        epoch : int, optional
            0-based epoch number; default: the number of earlier calls.

        Returns
        -------
        dict
            ``epoch``, and ``curvature_mean`` on epochs due for curvature scoring.

        The model's train/eval mode, its BatchNorm running statistics, its ``.grad`` and the
        Python, NumPy and torch random states are the same after the call as before.
        """
        epoch = len(self.history_) if epoch is None else int(epoch)
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module  # scoring must not sync buffers or gradients across ranks
        rank, world = dist.rank_world()
        ctx = _ScoringContext(
            model, self._device(model), self.output_fn, self.source, self.num_samples,
            epoch, rank, world,
        )  # fmt: skip
        metrics: dict[str, float] = {"epoch": epoch}
        with _preserved_rng(ctx.device), _preserved_modes(model):
            if self.tracker is not None:
                self.tracker.on_epoch_end(ctx, metrics)
            if self.dynamics is not None:
                self.dynamics.on_epoch_end(ctx, metrics)
        self._merge_observed(world > 1)
        self.history_.append(metrics)
        return dict(metrics)

    def observe(self, indices: Any, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one training batch's per-sample cross-entropy at its dataset indices.

        Parameters
        ----------
        indices : LongTensor (B,) or sequence of int
            Dataset indices of the batch's samples (as in ``score_data``).
        logits : Tensor (B, K)
            The training forward's logits (detached here; no extra forward is run).
        labels : LongTensor (B,)
            Class indices.
        """
        index = torch.as_tensor(indices).long().reshape(-1).cpu()
        logits = self.output_fn(logits) if not isinstance(logits, torch.Tensor) else logits
        labels = torch.as_tensor(labels)
        if logits.ndim != 2 or len(logits) != len(index) or labels.shape != index.shape:
            raise ValueError(
                f"observe needs indices (B,), logits (B, K) and labels (B,), got shapes "
                f"{tuple(index.shape)}, {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= self.num_samples):
            raise ValueError(
                f"observe got indices outside [0, {self.num_samples}) (score_data's samples): "
                f"min {int(index.min())}, max {int(index.max())}"
            )
        with torch.no_grad():
            loss = F.cross_entropy(
                logits.detach().double(), labels.to(logits.device).long(), reduction="none"
            )
        self._pending_sum.index_add_(0, index, loss.cpu())
        self._pending_count.index_add_(0, index, torch.ones(len(index), dtype=torch.float64))
        self._observed = True

    def scores(self) -> MemorizationScores:
        """Per-sample scores of the chosen methods, each ``(N,)`` in index order.

        Adds ``"csl"`` and ``"train_loss"`` when :meth:`observe` was called: each sample's
        summed training loss over the batches it appeared in (the cumulative sample loss) and
        that sum divided by its count (NaN for samples never observed, in both).  Under
        torchrun every rank holds the same, gathered scores; observations count up to the last
        :meth:`epoch_end`.
        """
        if not self.history_:
            raise RuntimeError(
                "MemorizationMonitor has no epoch yet: call monitor.epoch_end(model, epoch) "
                "after each training epoch, then scores()"
            )
        if self.tracker is not None and self.tracker.epochs_scored_ == 0:
            raise RuntimeError(
                f"no epoch was due for curvature scoring yet (every={self.tracker.every}; "
                f"epochs {[int(m['epoch']) for m in self.history_]} seen): epoch e is scored "
                "when e % every == 0"
            )
        if not dist.is_distributed():
            self._merge_observed(False)
        scores, per_epoch, seconds = _collect(self.tracker, self.dynamics)
        chosen = {name: scores[name] for name in self.methods}
        if self._observed:
            never = self._loss_count == 0
            chosen[CSL] = self._loss_sum.masked_fill(never, float("nan"))
            chosen[TRAIN_LOSS] = self._loss_sum / self._loss_count  # 0 / 0 = NaN: never seen
        return MemorizationScores(chosen, per_epoch, None, list(self.history_), seconds)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that let a resumed run continue the averages (only the epoch numbers of
        the history are kept).  No collective: rank 0 alone may save it."""
        state = {
            "epochs": torch.tensor([int(m["epoch"]) for m in self.history_], dtype=torch.long),
            "observed": torch.tensor(self._observed),
            "loss_sum": self._loss_sum.clone(),
            "loss_count": self._loss_count.clone(),
            "pending_sum": self._pending_sum.clone(),
            "pending_count": self._pending_count.clone(),
        }
        for prefix, part in (("curvature.", self.tracker), ("dynamics.", self.dynamics)):
            if part is not None:
                state.update({prefix + k: v for k, v in part.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.history_ = [{"epoch": int(e)} for e in state["epochs"].tolist()]
        self._observed = bool(state["observed"])
        self._loss_sum = state["loss_sum"].double().clone()
        self._loss_count = state["loss_count"].double().clone()
        self._pending_sum = state["pending_sum"].double().clone()
        self._pending_count = state["pending_count"].double().clone()
        for prefix, part in (("curvature.", self.tracker), ("dynamics.", self.dynamics)):
            if part is not None:
                n = len(prefix)
                part.load_state_dict({k[n:]: v for k, v in state.items() if k.startswith(prefix)})

    def _device(self, model: nn.Module) -> torch.device:
        if self.device is not None:
            return self.device
        return next(iter(model.parameters()), torch.empty(0)).device

    def _merge_observed(self, parallel: bool) -> None:
        """Add the observations since the last merge (summed over ranks when distributed)."""
        if parallel:  # a collective: every rank calls epoch_end
            pending = torch.stack([self._pending_sum, self._pending_count])
            self._observed = bool(dist.all_reduce_sum(torch.tensor(float(self._observed))))
            pending = dist.all_reduce_sum(pending)
        else:
            pending = torch.stack([self._pending_sum, self._pending_count])
        self._loss_sum += pending[0]
        self._loss_count += pending[1]
        self._pending_sum.zero_()
        self._pending_count.zero_()


@contextmanager
def _preserved_modes(model: nn.Module) -> Iterator[None]:
    """Every submodule's train/eval flag restored after: ``eval_mode`` restores only the
    top-level flag, which would switch a frozen BatchNorm inside a training model back on."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def _preserved_rng(device: torch.device) -> Iterator[None]:
    """Python, NumPy and torch (CPU and ``device``'s CUDA) random states restored after."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002
