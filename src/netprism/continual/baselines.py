"""Continual-learning baselines in the shared runner: fine-tuning, EWC, A-GEM, joint training.

* **EWC** -- Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks",
  PNAS 2017 (arXiv 1612.00796): after task ``t`` store ``theta*_t`` and the diagonal empirical
  Fisher ``F_t = mean_n (d log p(y_n | x_n) / d theta)^2``; while training later tasks add
  ``sum_t lam / 2 * sum_i F_t,i (theta_i - theta*_t,i)^2`` (one penalty per past task).
* **A-GEM** -- Chaudhry, Ranzato, Rohrbach & Elhoseiny, "Efficient Lifelong Learning with
  A-GEM", ICLR 2019 (arXiv 1812.00420): an episodic memory of past tasks' samples; with ``g``
  the flattened gradient and ``g_ref`` the gradient of the loss on a memory batch, if
  ``g . g_ref < 0`` replace ``g <- g - (g . g_ref / g_ref . g_ref) g_ref``.
* **Joint training** -- the multitask upper bound: one model trained on the union of tasks
  (one engine fit, :func:`netprism.train.fit`, with a per-sample loss through each sample's
  own task head).

The math lives in free functions (:func:`ewc_penalty`, :func:`empirical_fisher`,
:func:`agem_project`); the classes only sequence them through the runner's hooks.  EWC and
A-GEM compute losses through the task's head, so they take the stream's ``heads`` setting
(the runner checks that it matches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netprism.continual.recipe import as_tasks, resolve_config, task_config
from netprism.continual.runner import (
    ContinualMethod,
    check_stream,
    select_head,
    task_accuracy,
    task_class_ids,
    task_logits,
)
from netprism.core.outputs import as_logits
from netprism.core.seed import seed_everything
from netprism.data.base import TensorDataset
from netprism.train.config import TrainConfig
from netprism.train.data import Batch
from netprism.train.loop import fit


class FineTune(ContinualMethod):
    """Plain fine-tuning: no protection against forgetting (the lower bound)."""

    name = "finetune"


def _params(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _class_ids(data: TensorDataset, heads: str | None) -> Tensor | None:
    return task_class_ids(data) if heads == "multi" else None


def ewc_penalty(
    params: Sequence[Tensor],
    fishers: Sequence[Sequence[Tensor]],
    anchors: Sequence[Sequence[Tensor]],
    lam: float,
) -> Tensor:
    """EWC's quadratic penalty ``sum_t lam / 2 * sum_i F_t,i (theta_i - theta*_t,i)^2``.

    Parameters
    ----------
    params : sequence of Tensor
        Current parameters ``theta`` (any shapes).
    fishers, anchors : sequence over tasks of sequences of Tensor
        Per past task, the diagonal Fisher and the parameters after that task (same shapes).
    lam : float

    Examples
    --------
    >>> theta = [torch.tensor([1.0, 2.0])]
    >>> float(ewc_penalty(theta, [[torch.tensor([2.0, 1.0])]], [[torch.zeros(2)]], lam=1.0))
    3.0
    """
    total = params[0].new_zeros(())
    for fisher, anchor in zip(fishers, anchors):
        for p, f, a in zip(params, fisher, anchor):
            total = total + (f * (p - a) ** 2).sum()
    return 0.5 * lam * total


def empirical_fisher(
    model: nn.Module, x: Tensor, y: Tensor, class_ids: Tensor | None = None
) -> list[Tensor]:
    """Diagonal empirical Fisher: the mean over samples of the squared per-sample gradient of
    ``-log p(y | x)``, one tensor per trainable parameter.

    Parameters
    ----------
    x : Tensor, shape (N, *input_shape)
    y : Tensor, shape (N,)
    class_ids : Tensor of shape (K_t,), optional
        The task's logits (task-incremental heads).

    Examples
    --------
    >>> m = nn.Linear(2, 2)
    >>> [f.shape for f in empirical_fisher(m, torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))]
    [torch.Size([2, 2]), torch.Size([2])]
    """
    params = _params(model)
    fisher = [torch.zeros_like(p) for p in params]
    for n in range(len(y)):  # per-sample gradients; N is a few hundred at most
        loss = F.cross_entropy(task_logits(model, x[n : n + 1], class_ids), y[n : n + 1])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for f, g in zip(fisher, grads):
            if g is not None:
                f += g.detach() ** 2
    return [f / len(y) for f in fisher]


class EWC(ContinualMethod):
    """Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017).

    Parameters
    ----------
    lam : float
        Penalty strength ``lambda``.
    fisher_samples : int
        Samples of each task's training data used for its Fisher (drawn with ``seed``).
    seed : int
    heads : {None, "multi"}
        Must match the stream's ``heads``.

    Attributes
    ----------
    fishers_ : list over learned tasks of lists of Tensor
        The diagonal Fisher of every trainable parameter (its shape) after each task.
    anchors_ : list over learned tasks of lists of Tensor
        The trainable parameters (their shapes) after each task.

    Both are set by the first ``after_task`` (a fitted method), not before.
    """

    name = "ewc"

    def __init__(
        self, lam: float = 100.0, fisher_samples: int = 200, seed: int = 0, heads: str | None = None
    ) -> None:
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam!r}")
        if not isinstance(fisher_samples, int) or fisher_samples < 1:
            raise ValueError(f"fisher_samples must be a positive int, got {fisher_samples!r}")
        self.lam = float(lam)
        self.fisher_samples = fisher_samples
        self.seed = seed
        self.heads = heads

    def penalty(self, model: nn.Module) -> Tensor | None:
        if not getattr(self, "fishers_", None):
            return None
        return ewc_penalty(_params(model), self.fishers_, self.anchors_, self.lam)

    def after_task(self, model: nn.Module, task: int, data: TensorDataset) -> None:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + task)
        idx = torch.randperm(len(data), generator=gen)[: self.fisher_samples]
        dev = next(model.parameters()).device
        was_training = model.training
        model.eval()
        fisher = empirical_fisher(
            model, data.x[idx].to(dev), data.y[idx].to(dev), _class_ids(data, self.heads)
        )
        model.train(was_training)
        anchor = [p.detach().clone() for p in _params(model)]
        self.fishers_ = [*getattr(self, "fishers_", []), fisher]
        self.anchors_ = [*getattr(self, "anchors_", []), anchor]


def agem_project(g: Tensor, g_ref: Tensor) -> Tensor:
    """A-GEM's projection of a flat gradient ``g`` (D,) against a reference ``g_ref`` (D,).

    Returns ``g`` unchanged when ``g . g_ref >= 0``, else ``g - (g . g_ref / g_ref . g_ref)
    g_ref`` (so that the result is orthogonal to ``g_ref``).

    Examples
    --------
    >>> agem_project(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 1.0])).tolist()
    [1.0, 0.0]
    >>> agem_project(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])).tolist()
    [1.0, 1.0]
    """
    dot = torch.dot(g, g_ref)
    if dot >= 0:
        return g
    return g - (dot / torch.dot(g_ref, g_ref).clamp_min(1e-30)) * g_ref


class AGEM(ContinualMethod):
    """Averaged Gradient Episodic Memory (Chaudhry et al., ICLR 2019).

    Parameters
    ----------
    memory_per_task : int
        Samples kept from each finished task (drawn at random with ``seed``).
    ref_batch_size : int
        Memory samples drawn for each reference gradient.
    seed : int
    heads : {None, "multi"}
        Must match the stream's ``heads``; with ``"multi"`` each memory sample is scored
        through its own task's head.

    Attributes
    ----------
    memory_ : list over learned tasks of (x, y, class_ids)
        Each task's stored samples: ``x`` (M, *input_shape), ``y`` (M,) with
        ``M <= memory_per_task``, and its head's class ids (K_t,) or ``None`` (shared head).
        Set by the first ``after_task`` (a fitted method), not before.
    """

    name = "agem"

    def __init__(
        self,
        memory_per_task: int = 100,
        ref_batch_size: int = 256,
        seed: int = 0,
        heads: str | None = None,
    ) -> None:
        for value, label in ((memory_per_task, "memory_per_task"), (ref_batch_size, "ref_batch")):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.memory_per_task = memory_per_task
        self.ref_batch_size = ref_batch_size
        self.seed = seed
        self.heads = heads
        self._gen = torch.Generator().manual_seed(seed)

    def after_task(self, model: nn.Module, task: int, data: TensorDataset) -> None:
        idx = torch.randperm(len(data), generator=self._gen)[: self.memory_per_task]
        stored = (data.x[idx], data.y[idx], _class_ids(data, self.heads))
        self.memory_: list[tuple[Tensor, Tensor, Tensor | None]] = [
            *getattr(self, "memory_", []),
            stored,
        ]

    def reference_loss(self, model: nn.Module) -> Tensor:
        """Mean cross-entropy on a random batch of the episodic memory."""
        sizes = [len(y) for _, y, _ in self.memory_]
        pick = torch.randperm(sum(sizes), generator=self._gen)[: self.ref_batch_size]
        dev = next(model.parameters()).device
        total, offset = None, 0
        for (x, y, ids), size in zip(self.memory_, sizes):
            local = pick[(pick >= offset) & (pick < offset + size)] - offset
            offset += size
            if len(local) == 0:
                continue
            logits = task_logits(model, x[local].to(dev), ids)
            loss = F.cross_entropy(logits, y[local].to(dev), reduction="sum")
            total = loss if total is None else total + loss
        assert total is not None
        return total / len(pick)

    def after_backward(self, model: nn.Module, task: int, batch: tuple[Tensor, Tensor]) -> None:
        if not getattr(self, "memory_", None):
            return
        params = _params(model)
        ref = torch.autograd.grad(self.reference_loss(model), params, allow_unused=True)
        g = _flat([p.grad for p in params], params)
        g_ref = _flat(list(ref), params)
        new = agem_project(g, g_ref)
        if new is g:
            return
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = new[offset : offset + n].view_as(p).clone()
            offset += n


def _flat(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    """Concatenate gradients into one vector ``(D,)`` (``None`` -> zeros)."""
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


def joint_loss(
    task_of: Tensor, class_ids: Sequence[Tensor | None]
) -> Callable[[Any, Batch], Tensor]:
    """The engine ``loss_fn`` of joint training: each sample's cross-entropy through its own
    task's head.

    Parameters
    ----------
    task_of : LongTensor (N,)
        Task id of every sample of the union, looked up by the batch's dataset ``index``.
    class_ids : sequence over tasks of Tensor (K_t,) or None
        Each task's columns of the logits (``None``: all of them, a shared head).

    Returns
    -------
    callable
        ``loss_fn(output, batch) -> (B,)`` per-sample losses.

    Examples
    --------
    >>> loss_fn = joint_loss(torch.tensor([0, 1]), [torch.tensor([0, 1]), torch.tensor([2, 3])])
    >>> logits = torch.tensor([[0.0, 0.0, 9.0, 9.0], [9.0, 9.0, 0.0, 0.0]])
    >>> batch = Batch(None, torch.tensor([0, 1]), torch.tensor([0, 1]))
    >>> [round(v, 4) for v in loss_fn(logits, batch).tolist()]  # log 2: 2 classes per task
    [0.6931, 0.6931]
    """
    shared = all(ids is None for ids in class_ids)

    def loss_fn(output: Any, batch: Batch) -> Tensor:
        logits = as_logits(output)  # (B, K)
        if shared:
            return F.cross_entropy(logits, batch.y, reduction="none")
        if batch.index is None:
            raise ValueError("joint training needs each sample's dataset index")
        tasks = task_of[batch.index]  # (B,) on the CPU, like the index
        losses = logits.new_empty(len(batch.y))
        for t in tasks.unique().tolist():
            rows = (tasks == t).nonzero().flatten().to(logits.device)
            head = select_head(logits[rows], class_ids[t])  # (B_t, K_t)
            losses[rows] = F.cross_entropy(head, batch.y[rows], reduction="none")
        return losses

    return loss_fn


def joint_training(
    model: nn.Module,
    train_tasks: Sequence[Any],
    test_tasks: Sequence[Any],
    *,
    config: TrainConfig | None = None,
    heads: str | None = None,
) -> Tensor:
    """Multitask upper bound: train ``model`` on the union of all tasks at once.

    The same recipe as :func:`~netprism.continual.runner.run_stream` (``config``, default
    :func:`~netprism.continual.recipe.stream_config`, honoured as given), trained by one
    :func:`~netprism.train.fit` of ``config.epochs`` epochs; the union is shuffled every epoch
    (a generator seeded with ``config.seed``) and each sample's loss goes through its own
    task's head (:func:`joint_loss`).  Tasks may be any dataset input that ``run_stream``
    accepts.

    Returns
    -------
    Tensor, shape (T,)
        Test accuracy on each task after training.

    Examples
    --------
    >>> from netprism.continual.recipe import stream_config
    >>> from netprism.data import DatasetInfo
    >>> info = DatasetInfo("toy", ("a", "b"), (2,), "x")
    >>> tasks = [TensorDataset(torch.randn(8, 2), torch.arange(8) % 2, info) for _ in range(2)]
    >>> joint_training(nn.Linear(2, 2), tasks, tasks, config=stream_config(1, device="cpu")).shape
    torch.Size([2])
    """
    config = resolve_config(config, "joint_training")
    train_tasks, test_tasks = as_tasks(train_tasks, test_tasks)
    class_ids = check_stream(train_tasks, test_tasks, heads)
    dev = torch.device(config.device)
    seed_everything(config.seed)
    x = torch.cat([d.x for d in train_tasks])  # (N_total, *input_shape)
    y = torch.cat([d.y for d in train_tasks])
    task_of = torch.cat([torch.full((len(d),), t) for t, d in enumerate(train_tasks)])
    gen = torch.Generator().manual_seed(config.seed)

    def order(epoch: int) -> Tensor:  # called once per epoch, in epoch order
        return torch.randperm(len(y), generator=gen)

    fit(
        model,
        (x, y),
        task_config(config),
        loss_fn=joint_loss(task_of, class_ids),
        order=order,
        reseed=False,
        distributed=False,
    )
    return torch.tensor(
        [task_accuracy(model, d, class_ids[j], dev) for j, d in enumerate(test_tasks)]
    )
