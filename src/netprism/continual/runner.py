"""Train a continual-learning method over a task stream and record the accuracy matrix.

The runner trains every task with the engine, :func:`netprism.train.fit` (forward,
cross-entropy + optional penalty, backward, ``after_backward``, step; a fresh optimizer per
task and a constant learning rate, as in the GPM code of Saha, Garg & Roy, "Gradient
Projection Memory for Continual Learning", ICLR 2021, arXiv 2103.09762), then tests on every
task.  A :class:`ContinualMethod`'s step hooks reach the engine through
:class:`MethodCallback` (``penalty`` -> the engine's ``penalty``, ``after_backward`` -> its
``on_after_backward``); the task's head is the engine's ``output_fn``; the task's shuffling
is the engine's ``order``.  The metrics are those of Lopez-Paz & Ranzato, "Gradient Episodic
Memory for Continual Learning" (GEM, NeurIPS 2017, arXiv 1706.08840):

* ``R[i, j]`` -- accuracy on task ``j`` after training task ``i``, shape ``(T, T)``;
* ``ACC = mean_j R[T-1, j]``;
* ``BWT = mean_{j < T-1} (R[T-1, j] - R[j, j])`` (negative = forgetting).

Heads
-----
``heads=None`` (domain-incremental, e.g. permuted tasks): one shared head; every task's labels
index the model's ``K`` logits directly.  ``heads="multi"`` (task-incremental, e.g. split
tasks): the model still has one linear head with ``K`` outputs over the *global* classes, and
task ``t`` reads only the logits of its own classes.  The classes come from the task dataset's
``extras["global_y"]`` (written by :func:`netprism.data.split_tasks`): local label ``c`` maps
to global class ``class_ids[c]``, so ``logits[:, class_ids]`` are the task's logits and the
local labels index them.  Methods receive the unwrapped model in every hook.

Recipe
------
The training recipe is one :class:`~netprism.train.TrainConfig`, passed as ``config=``; the
default, :func:`~netprism.continual.recipe.stream_config`, is plain SGD (no momentum, no
weight decay, no schedule) at lr 0.01, batch 64, 5 epochs per task, seed 0, device "auto".
A config is honoured as given (optimizer, momentum, weight decay, schedule, label smoothing,
gradient clipping): every fit of a task (and of each phase of a task) builds a fresh optimizer
and, with a ``scheduler``, a fresh schedule over that fit's epochs.  The progress bar is
switched off, and checkpoints are refused (a stream is not resumed task by task).  A method
may refuse a recipe that breaks its guarantee (:meth:`ContinualMethod.check_config`; e.g.
SPACE refuses weight decay).

Data
----
Tasks are netprism :class:`~netprism.data.TensorDataset` objects or anything
:func:`netprism.data.base.as_dataset` accepts (``torch.utils.data.TensorDataset(x, y)``, an
``(x, y)`` pair, a map-style ``Dataset`` of ``(x, y)`` items); for those the input shape
comes from ``x`` and the number of classes from the largest label over the whole stream
(:func:`netprism.data.base.as_datasets`).

Randomness: ``run_stream`` seeds the global RNG once; the tasks' fits continue that stream
(``reseed=False``), and each task (and each phase of a task) shuffles with its own generator.
Every fit runs on this process alone (``distributed=False``): a stream is sequential, and the
experiments share whole seeds out over ``torchrun`` ranks instead.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from netprism.continual.recipe import as_tasks, resolve_config, task_config
from netprism.core.outputs import OutputFn, as_logits
from netprism.core.seed import seed_everything
from netprism.data.base import TensorDataset
from netprism.train.callbacks import Callback, TrainContext
from netprism.train.config import TrainConfig
from netprism.train.data import Batch
from netprism.train.loop import FitResult, fit

HEADS = (None, "multi")


Trainer = Callable[..., Any]


class ContinualMethod:
    """Base class of continual-learning methods: every hook is optional (no-op by default).

    Subclasses override any of ``before_task``, ``penalty`` (a scalar added to the loss, e.g.
    EWC), ``after_backward`` (edit ``.grad`` in place, e.g. GPM projection, A-GEM) and
    ``after_task`` (e.g. GPM memory update, EWC Fisher).  The base class is plain fine-tuning.
    ``penalty`` and ``after_backward`` run inside the engine's step (:func:`netprism.train.fit`,
    through :class:`MethodCallback`).

    Two more hooks serve methods with several training phases or per-task networks (SPACE):
    ``fit_task(model, task, data, train)`` receives the runner's training as
    ``train(epochs=None)`` (one engine fit, returning its ``FitResult``) and may call it several
    times (the default calls ``before_task``, ``train()``, ``after_task``);
    ``task_context(model, task)`` is entered while task ``task`` is evaluated (the default
    changes nothing).  ``check_config(config)`` runs once before the stream and may refuse a
    training recipe (a :class:`~netprism.train.TrainConfig`) that breaks the method.

    Examples
    --------
    >>> ContinualMethod().penalty(nn.Linear(2, 2)) is None
    True
    """

    name: str = "finetune"

    def before_task(self, model: nn.Module, task: int, data: TensorDataset) -> None:
        """Called before training on task ``task`` with its training data."""

    def penalty(self, model: nn.Module) -> Tensor | None:
        """A scalar added to the task loss at every step, or ``None``."""
        return None

    def after_backward(self, model: nn.Module, task: int, batch: tuple[Tensor, Tensor]) -> None:
        """Called after ``loss.backward()`` and before the optimizer step; may edit ``.grad``."""

    def after_task(self, model: nn.Module, task: int, data: TensorDataset) -> None:
        """Called after training on task ``task`` with its training data."""

    def fit_task(self, model: nn.Module, task: int, data: TensorDataset, train: Trainer) -> None:
        """Learn task ``task``; ``train(epochs=None)`` runs the runner's loop with the hooks."""
        self.before_task(model, task, data)
        train()
        self.after_task(model, task, data)

    @contextlib.contextmanager
    def task_context(self, model: nn.Module, task: int) -> Iterator[nn.Module]:
        """The network that answers for task ``task`` while the block runs (the model itself)."""
        yield model

    def check_config(self, config: TrainConfig) -> None:
        """Raise (or warn) when the stream's recipe ``config`` breaks the method; default: any."""


class MethodCallback(Callback):
    """A :class:`ContinualMethod`'s step hooks as an engine callback for task ``task``.

    ``penalty(model)`` becomes the engine's ``penalty(ctx, batch)`` (added to the batch's mean
    loss) and ``after_backward(model, task, (x, y))`` its ``on_after_backward(ctx, batch)``
    (after ``backward``, before the optimizer step; may edit ``.grad``, may run its own
    forward/backward passes as A-GEM does).  The method receives the unwrapped model.

    Examples
    --------
    >>> class Count(ContinualMethod):
    ...     steps = 0
    ...     def after_backward(self, model, task, batch):
    ...         self.steps += 1
    >>> method, (x, y) = Count(), (torch.randn(8, 2), torch.arange(8) % 2)
    >>> cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", progress=False)
    >>> _ = fit(nn.Linear(2, 2), (x, y), cfg, callbacks=[MethodCallback(method, task=0)])
    >>> method.steps
    2
    """

    def __init__(self, method: ContinualMethod, task: int) -> None:
        self.method = method
        self.task = task

    def penalty(self, ctx: TrainContext, batch: Batch) -> Tensor | None:
        return self.method.penalty(ctx.model)

    def on_after_backward(self, ctx: TrainContext, batch: Batch) -> None:
        self.method.after_backward(ctx.model, self.task, (batch.x, batch.y))


@dataclass
class StreamResult:
    """What :func:`run_stream` returns.

    Attributes
    ----------
    R : Tensor, shape (T, T)
        ``R[i, j]`` = accuracy (fraction in [0, 1]) on task ``j`` after training task ``i``.
    method : str
    seconds : float
        Wall-clock time of the whole stream (training + evaluation).
    """

    R: Tensor
    method: str = "finetune"
    seconds: float = 0.0

    @property
    def acc(self) -> float:
        """Mean final accuracy over tasks (GEM's ACC)."""
        return acc_bwt(self.R)[0]

    @property
    def bwt(self) -> float:
        """Backward transfer (GEM's BWT); negative means forgetting."""
        return acc_bwt(self.R)[1]

    @property
    def la(self) -> float:
        """Learning accuracy: mean of the diagonal ``R[j, j]`` (plasticity)."""
        return float(self.R.diagonal().mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "R": self.R.tolist(),
            "acc": self.acc,
            "bwt": self.bwt,
            "la": self.la,
            "seconds": self.seconds,
        }


def acc_bwt(R: Tensor) -> tuple[float, float]:
    """ACC and BWT of an accuracy matrix (Lopez-Paz & Ranzato, 2017).

    Parameters
    ----------
    R : Tensor, shape (T, T)
        ``R[i, j]`` = accuracy on task ``j`` after training task ``i``; ``T >= 2``.

    Returns
    -------
    (acc, bwt) : tuple of float
        ``acc = mean_j R[T-1, j]``, ``bwt = mean_{j<T-1} R[T-1, j] - R[j, j]``.

    Examples
    --------
    >>> acc, bwt = acc_bwt(torch.tensor([[0.9, 0.1], [0.5, 0.8]], dtype=torch.float64))
    >>> round(acc, 6), round(bwt, 6)
    (0.65, -0.4)
    """
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2:
        raise ValueError(f"R must be a (T, T) matrix with T >= 2, got shape {tuple(R.shape)}")
    last = R[-1].double()
    acc = float(last.mean())
    bwt = float((last[:-1] - R.diagonal()[:-1].double()).mean())
    return acc, bwt


def task_class_ids(data: TensorDataset) -> Tensor:
    """Global class ids of a task-incremental task, indexed by local label, shape ``(K_t,)``.

    Reads ``extras["global_y"]`` (see :func:`netprism.data.split_tasks`); local label ``c`` is
    global class ``class_ids[c]``.

    Examples
    --------
    >>> from netprism.data import DatasetInfo
    >>> ds = TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 0]),
    ...                    DatasetInfo("t", ("a", "b"), (2,), "x"),
    ...                    {"global_y": torch.tensor([4, 5, 4])})
    >>> task_class_ids(ds).tolist()
    [4, 5]
    """
    if "global_y" not in data.extras:
        raise ValueError(
            f"heads='multi' needs extras['global_y'] on task {data.name!r} "
            "(use split_stream / split_tasks(relabel=True))"
        )
    gy = data.extras["global_y"].long()
    ids = torch.full((data.num_classes,), -1, dtype=torch.long)
    for c in range(data.num_classes):
        seen = gy[data.y == c].unique()
        if len(seen) > 1:
            raise ValueError(f"local label {c} of {data.name!r} maps to several global classes")
        if len(seen) == 1:
            ids[c] = seen[0]
    if (ids < 0).any():
        raise ValueError(f"task {data.name!r} has a class with no samples; cannot fix its head")
    return ids


def select_head(logits: Tensor, class_ids: Tensor | None) -> Tensor:
    """A task's logits: all ``(B, K)`` or the task's columns ``(B, K_t)`` of ``logits``.

    Examples
    --------
    >>> select_head(torch.arange(6.0).view(2, 3), torch.tensor([2, 0])).tolist()
    [[2.0, 0.0], [5.0, 3.0]]
    """
    if class_ids is None:
        return logits
    if int(class_ids.max()) >= logits.shape[1]:
        raise ValueError(
            f"the model has {logits.shape[1]} outputs but the task uses global class "
            f"{int(class_ids.max())}; build it with num_classes = total number of classes"
        )
    return logits[:, class_ids.to(logits.device)]


def task_head(class_ids: Tensor | None) -> OutputFn:
    """The engine's ``output_fn`` for one task: model output -> the task's logits."""
    if class_ids is None:
        return as_logits
    on_device: dict[torch.device, Tensor] = {}

    def head(output: Any) -> Tensor:
        logits = as_logits(output)  # (B, K)
        ids = on_device.get(logits.device)
        if ids is None:
            select_head(logits[:0], class_ids)  # checks the head is wide enough
            ids = on_device[logits.device] = class_ids.to(logits.device)
        return logits[:, ids]  # (B, K_t)

    return head


def task_logits(model: nn.Module, x: Tensor, class_ids: Tensor | None) -> Tensor:
    """The model's logits for one task: all ``(B, K)`` or the task's columns ``(B, K_t)``."""
    return select_head(as_logits(model(x)), class_ids)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return torch.device("cpu") if param is None else param.device


@torch.no_grad()
def task_accuracy(
    model: nn.Module,
    data: TensorDataset,
    class_ids: Tensor | None,
    device: torch.device | None = None,
) -> float:
    """Accuracy of ``model`` on one task's data (through the task's head).

    Batches go to ``device`` (default: where the model's parameters are).
    """
    device = _model_device(model) if device is None else device
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(data), 512):
        xb = data.x[start : start + 512].to(device)
        yb = data.y[start : start + 512].to(device)
        correct += int((task_logits(model, xb, class_ids).argmax(dim=1) == yb).sum())
    model.train(was_training)
    return correct / len(data)


def check_stream(
    train_tasks: Sequence[TensorDataset],
    test_tasks: Sequence[TensorDataset],
    heads: str | None = None,
) -> list[Tensor | None]:
    """Validate a stream; return each task's class ids (``None`` for a shared head)."""
    if heads not in HEADS:
        raise ValueError(f"heads must be None or 'multi', got {heads!r}")
    if len(train_tasks) < 2:
        raise ValueError("a stream needs at least 2 tasks")
    if len(train_tasks) != len(test_tasks):
        raise ValueError(
            f"train and test streams must have the same number of tasks, "
            f"got {len(train_tasks)} and {len(test_tasks)}"
        )
    shape = train_tasks[0].input_shape
    for t, (tr, te) in enumerate(zip(train_tasks, test_tasks)):
        if tr.input_shape != shape or te.input_shape != shape:
            raise ValueError(
                f"every task must have input shape {shape}, task {t} has "
                f"{tr.input_shape} (train) and {te.input_shape} (test)"
            )
    if heads is None:
        k = train_tasks[0].num_classes
        if any(d.num_classes != k for d in (*train_tasks, *test_tasks)):
            raise ValueError("a shared head (heads=None) needs the same classes in every task")
        return [None] * len(train_tasks)
    ids = [task_class_ids(d) for d in train_tasks]
    for t, te in enumerate(test_tasks):
        if not torch.equal(task_class_ids(te), ids[t]):
            raise ValueError(f"task {t} has different classes in its train and test sets")
    return list(ids)


def _check_method_heads(method: ContinualMethod, heads: str | None) -> None:
    want = getattr(method, "heads", heads)
    if want != heads:
        raise ValueError(
            f"method {method.name!r} was built for heads={want!r} but the stream runs "
            f"heads={heads!r}"
        )


def train_task(
    model: nn.Module,
    data: TensorDataset,
    task: int,
    method: ContinualMethod,
    class_ids: Tensor | None,
    *,
    config: TrainConfig,
    device: torch.device | str | None = None,
    epochs: int | None = None,
    phase: int = 0,
) -> FitResult:
    """Train ``model`` on one task with :func:`~netprism.train.fit`; hooks included.

    A fresh optimizer (``config.optimizer``, ``lr``, ``momentum``, ``weight_decay``) and, with
    ``config.scheduler``, a fresh schedule per call
    (:func:`~netprism.continual.recipe.task_config`).  The global RNG is not reseeded (the
    stream's seed carries on); the samples are shuffled every epoch by a generator seeded with
    ``(config.seed, task, phase)``.  ``epochs`` overrides
    ``config.epochs`` for a method's later phase (e.g. SPACE's retraining); ``phase`` (0, 1,
    ...) gives each phase its own shuffling order.  ``device`` overrides ``config.device``.

    Returns
    -------
    FitResult
        The engine's per-epoch history (loss, accuracy through the task's head).
    """
    if epochs is not None and (not isinstance(epochs, int) or epochs < 0):
        raise ValueError(f"epochs must be a nonnegative int, got {epochs!r}")
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + task + 7_919 * phase)
    n = len(data)

    def order(epoch: int) -> Tensor:  # called once per epoch, in epoch order
        return torch.randperm(n, generator=gen)

    return fit(
        model,
        data,
        task_config(config, epochs, device),
        callbacks=[MethodCallback(method, task)],
        output_fn=task_head(class_ids),
        order=order,
        reseed=False,
        distributed=False,
    )


def _trainer(
    model: nn.Module,
    data: TensorDataset,
    task: int,
    method: ContinualMethod,
    class_ids: Tensor | None,
    config: TrainConfig,
) -> Trainer:
    """``train(epochs=None)`` for ``fit_task``: each call is a new phase with its own order."""
    calls = [0]

    def train(epochs: int | None = None) -> FitResult:
        phase, calls[0] = calls[0], calls[0] + 1
        return train_task(
            model, data, task, method, class_ids, config=config, epochs=epochs, phase=phase
        )

    return train


def run_stream(
    model: nn.Module,
    train_tasks: Sequence[Any],
    test_tasks: Sequence[Any],
    method: ContinualMethod | None = None,
    *,
    config: TrainConfig | None = None,
    heads: str | None = None,
) -> StreamResult:
    """Train ``method`` over a task stream and record the accuracy matrix.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, *input_shape)`` to ``(B, K)`` logits; trained in place.  With
        ``heads="multi"``, ``K`` is the total number of global classes.
    train_tasks, test_tasks : sequence of TensorDataset (or of any dataset input)
        ``T >= 2`` tasks each, same input shape (e.g. from :func:`permuted_stream`).  Torch
        ``TensorDataset(x, y)``, ``(x, y)`` pairs and map-style datasets of ``(x, y)`` items
        are accepted too (see :func:`~netprism.continual.recipe.as_tasks`).
    method : ContinualMethod, optional
        Defaults to plain fine-tuning.
    config : TrainConfig, optional
        The recipe of every task, honoured as given (see the module docstring); default
        :func:`~netprism.continual.recipe.stream_config` (plain SGD, lr 0.01, batch 64, 5
        epochs per task, seed 0, device "auto").  ``config.seed`` seeds the global RNG once
        (dropout, method sampling) and the per-task shuffling; ``config.device`` is where
        every task is trained and tested.
    heads : {None, "multi"}
        Shared head or one head per task (see the module docstring).

    Returns
    -------
    StreamResult
        ``R`` of shape ``(T, T)``, ``acc``, ``bwt``, ``seconds``.

    Examples
    --------
    >>> from netprism.data import DatasetInfo
    >>> info = DatasetInfo("toy", ("a", "b"), (2,), "x")
    >>> tasks = [TensorDataset(torch.randn(8, 2), torch.arange(8) % 2, info) for _ in range(2)]
    >>> from netprism.continual.recipe import stream_config
    >>> cfg = stream_config(epochs=1, device="cpu")
    >>> run_stream(nn.Linear(2, 2), tasks, tasks, config=cfg).R.shape
    torch.Size([2, 2])
    >>> pairs = [(d.x, d.y) for d in tasks]  # plain (x, y) tensors work as well
    >>> run_stream(nn.Linear(2, 2), pairs, pairs, config=cfg).R.shape
    torch.Size([2, 2])
    """
    method = ContinualMethod() if method is None else method
    config = resolve_config(config)
    train_tasks, test_tasks = as_tasks(train_tasks, test_tasks)
    class_ids = check_stream(train_tasks, test_tasks, heads)
    _check_method_heads(method, heads)
    method.check_config(config)
    dev = torch.device(config.device)
    seed_everything(config.seed)
    model.to(dev)
    n_tasks = len(train_tasks)
    R = torch.zeros(n_tasks, n_tasks)
    start = time.perf_counter()
    for t, data in enumerate(train_tasks):
        method.fit_task(model, t, data, _trainer(model, data, t, method, class_ids[t], config))
        for j, test in enumerate(test_tasks):
            with method.task_context(model, j) as net:
                R[t, j] = task_accuracy(net, test, class_ids[j], dev)
    return StreamResult(R, method.name, time.perf_counter() - start)
