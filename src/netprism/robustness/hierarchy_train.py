"""Multi-head hierarchical models and conditional training with validity masks.

Mukherjee, Garg & Roy, "Encoding Hierarchical Information in Neural Networks helps in
Subpopulation Shift", IEEE TAI 2023, arXiv 2112.10844 (official code: "Hierarchical-18", a
ResNet-18 whose coarsest head reads the pooled ``layer3`` output and whose finer heads read
``layer4``).  Per mini-batch the official code takes one optimiser step per level, coarse to
fine, recomputing the forward pass each time; level ``l``'s loss is ``mean(CE_l * V_l)`` over
the **whole** batch, where the validity mask ``V_l`` is 1 only for samples whose every coarser
head is right (``V_1 = 1``).  At test time only the finest head is used.

``mode="combined"`` (not in the paper) is one step on ``sum_l mean(CE_l * V_l)``.
``mode="bcnn"`` is a Branch-CNN-style baseline (Zhu & Bain 2017): the same heads trained with
``sum_l w_l(epoch) CE_l``, weights moving from coarse to fine over training (the stage
boundaries below are inferred, not the original epochs).  ``mode="flat"`` trains only the
finest head: the flat baseline.  Every mode runs through the same loop, data order and
optimiser, so a comparison differs only in the loss.

Training runs on the engine (:func:`netprism.train.fit`) with a
:class:`~netprism.train.TrainConfig` recipe (default :func:`conditional_config`): ``loss_fn``
turns the list of level logits into per-sample losses, ``output_fn`` picks the finest level,
the recipe's step schedule is passed as ``scheduler=``.  ``mode="sequential"`` keeps its one
step per level per batch because the epoch's plan holds every batch once per level, in a row
(coarse to fine), and the loss trains the level whose turn it is; the batch order is the same
in every mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.seed import make_generator
from netprism.core.validation import check_finite, check_positive_int
from netprism.data.base import as_tensors
from netprism.robustness.hierarchy import LabelTree
from netprism.train import Batch, BatchOutput, Callback, TrainConfig, TrainContext, fit
from netprism.train.config import NO_CHECKPOINTS, require_train_config

MODES = ("sequential", "combined", "bcnn", "flat")


class HierarchicalMLP(nn.Module):
    """An MLP trunk with one linear head per tree level, coarse heads on earlier features.

    Parameters
    ----------
    in_features : int
        ``D``, the flattened input size.
    level_sizes : sequence of int
        Classes per level, coarse to fine (``(4, 8, 16)``); ``(K,)`` gives a flat classifier
        with the same trunk.
    hidden : sequence of int
        Widths of the trunk's ReLU layers.
    head_layers : sequence of int, optional
        Per level, the trunk layer (index into ``hidden``) whose output feeds its head.  By
        default the finest two levels read the last layer and coarser ones the layer before
        (as Hierarchical-18: head 1 on ``layer3``, heads 2-3 on ``layer4``).

    ``forward(x)`` maps (N, ...) to a list of per-level logits, (N, K_l) each.

    Examples
    --------
    >>> m = HierarchicalMLP(10, (2, 4, 8), hidden=(16, 16))
    >>> [tuple(o.shape) for o in m(torch.zeros(3, 10))]
    [(3, 2), (3, 4), (3, 8)]
    """

    def __init__(
        self,
        in_features: int,
        level_sizes: Sequence[int],
        hidden: Sequence[int] = (128, 128),
        head_layers: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(in_features, "in_features")
        if not hidden or not level_sizes:
            raise ValueError(
                f"hidden and level_sizes must be non-empty, got {hidden}, {level_sizes}"
            )
        for v in (*hidden, *level_sizes):
            check_positive_int(v, "every width and level size")
        n = len(level_sizes)
        last = len(hidden) - 1
        if head_layers is None:
            head_layers = [max(last - 1, 0)] * max(n - 2, 0) + [last] * min(n, 2)
        if len(head_layers) != n or any(not 0 <= h <= last for h in head_layers):
            raise ValueError(
                f"head_layers needs {n} indices in [0, {last}], got {list(head_layers)}"
            )
        self.head_layers = tuple(int(h) for h in head_layers)
        widths = [in_features, *hidden]
        self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.heads = nn.ModuleList(
            nn.Linear(hidden[h], k) for h, k in zip(self.head_layers, level_sizes)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.flatten(1)  # (N, D)
        feats = []
        for layer in self.trunk:
            h = F.relu(layer(h))
            feats.append(h)
        return [head(feats[i]) for head, i in zip(self.heads, self.head_layers)]


def validity_masks(
    logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Per level, 1.0 where every coarser head predicts its target: ``V_l = prod_{j<l}
    1[argmax logits_j = y_j]`` (``V_1 = 1``); float (N,) each, no gradient.

    Examples
    --------
    >>> lg = [torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.zeros(2, 3)]
    >>> [v.tolist() for v in validity_masks(lg, [torch.tensor([0, 0]), torch.tensor([1, 1])])]
    [[1.0, 1.0], [1.0, 0.0]]
    """
    _check_levels(logits, targets)
    masks = [torch.ones(len(targets[0]), device=targets[0].device)]
    for lg, y in zip(logits[:-1], targets[:-1]):
        masks.append(masks[-1] * (lg.detach().argmax(1) == y).float())
    return masks


def level_losses(
    logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], *, masked: bool = True
) -> list[torch.Tensor]:
    """Per-level ``mean(CE_l * V_l)`` over the whole batch (masked-out samples count as 0);
    with ``masked=False`` the plain mean cross-entropy per level."""
    masks = validity_masks(logits, targets)
    out = []
    for lg, y, v in zip(logits, targets, masks):
        ce = F.cross_entropy(lg, y, reduction="none")  # (N,)
        out.append((ce * v).mean() if masked else ce.mean())
    return out


def bcnn_weights(epoch: int, epochs: int, n_levels: int) -> list[float]:
    """Branch-CNN loss weights at ``epoch``: stage ``s`` (of ``n_levels + 1`` equal stages over
    the first 55 % of training) puts 0.8 on level ``s`` and spreads 0.2 over the others;
    afterwards all weight is on the finest level.

    Examples
    --------
    >>> bcnn_weights(0, 100, 3), bcnn_weights(99, 100, 3)
    ([0.8, 0.1, 0.1], [0.0, 0.0, 1.0])
    """
    if n_levels == 1:
        return [1.0]
    stage = int(epoch / max(epochs, 1) / 0.55 * n_levels)
    if stage >= n_levels:
        return [0.0] * (n_levels - 1) + [1.0]
    rest = 0.2 / (n_levels - 1)
    return [0.8 if i == stage else rest for i in range(n_levels)]


def conditional_config(
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> TrainConfig:
    """The default recipe of :func:`conditional_fit`: SGD with momentum, the learning rate
    dropping 10x at 1/3 and 2/3 of training (``scheduler="step"``; the official schedule:
    every 150 of 450 epochs), no progress bar.

    Examples
    --------
    >>> cfg = conditional_config(epochs=9)
    >>> cfg.optimizer, cfg.scheduler, cfg.lr, cfg.weight_decay, cfg.batch_size
    ('sgd', 'step', 0.05, 0.0001, 64)
    """
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        optimizer="sgd",
        scheduler="step",
        seed=seed,
        device=str(device),
        progress=False,
    )


def conditional_fit(
    model: nn.Module,
    data: Any,
    tree: LabelTree,
    *,
    mode: str = "sequential",
    config: TrainConfig | None = None,
    val: Any = None,
    callbacks: Sequence[Any] = (),
) -> list[float]:
    """Train ``model`` (returning per-level logits, coarse to fine) on leaf labels ``y``.

    Parameters
    ----------
    model : nn.Module
        ``model(x)`` returns a list of (N, K_l) logits, one per level of ``tree`` (one, the
        finest, for ``mode="flat"``).
    data : TensorDataset, (x, y) tensors, Dataset or DataLoader
        Inputs ``x`` (N, ...) and leaf class indices ``y`` (N,) of ``tree`` (every leaf at
        one depth; see ``LabelTree.padded``).
    mode : {"sequential", "combined", "bcnn", "flat"}
        See the module docstring; "sequential" is the paper's recipe.
    config : TrainConfig, optional
        The training recipe; default :func:`conditional_config`.  Honoured: epochs, batch
        size, optimizer, lr, momentum, weight decay, seed (data order and global RNGs),
        device (the model is moved there), progress, max_grad_norm, and ``scheduler``:
        ``"step"`` is **this recipe's** step schedule, 10x drops at 1/3 and 2/3 of training
        (not the engine's 50 % / 75 %), ``"cosine"`` and ``"none"`` are the engine's.
        Refused with a ValueError: ``label_smoothing`` (the level losses are the method's)
        and ``checkpoint_dir`` / ``resume`` (the loss history is not checkpointed).
    val : (x, y) tensors or any data :func:`netprism.train.fit` takes, optional
        Held-out samples with leaf labels, scored after every epoch by the finest head
        (``val_loss`` and ``val_accuracy`` in the epoch metrics callbacks see).
    callbacks : sequence of Callback
        Further engine callbacks, run after the recipe's own (e.g.
        :class:`~netprism.train.callbacks.KeepBest` to keep the best validation epoch).

    Returns
    -------
    list of float
        Mean finest-level training cross-entropy per epoch: per batch, the finest head's
        mean cross-entropy before the batch's (last) step, averaged over the batches.

    Examples
    --------
    >>> tree = LabelTree.from_children({"r": ["a", "b"], "a": ["a0", "a1"], "b": ["b0", "b1"]})
    >>> x, y = torch.randn(16, 5), torch.arange(16) % 4
    >>> net = HierarchicalMLP(5, (2, 4), hidden=(8, 8))
    >>> len(conditional_fit(net, (x, y), tree, config=conditional_config(epochs=2, device="cpu")))
    2
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    config = require_train_config(config, conditional_config(), "conditional_fit", _UNSUPPORTED)
    epochs = config.epochs
    x, y = as_tensors(data)
    x, y = x.cpu(), y.cpu()  # batches are cut on the CPU; fit moves each to the device
    check_finite(x, "x")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    tree.check_labels(y, "y")
    targets = [y] if mode == "flat" else tree.level_labels(y)
    repeats = len(targets) if mode == "sequential" else 1
    batches = _LevelBatches(len(x), config.batch_size, config.seed, repeats)
    levels = _LevelTraining(mode, targets, epochs, batches)
    fit(
        model,
        (x, y),
        config,  # fit seeds the global generators with config.seed, as the recipe always did
        val=val,
        order=batches.plan,
        callbacks=[levels, *callbacks],
        loss_fn=levels.loss,
        output_fn=_finest,
        scheduler=_thirds_schedule(epochs) if config.scheduler == "step" else None,
        distributed=False,  # the per-level plan is a single-process recipe
    )
    model.eval()
    return levels.history


_UNSUPPORTED = {
    **NO_CHECKPOINTS,
    "label_smoothing": (0.0, "the losses are the method's level losses"),
}


def _thirds_schedule(epochs: int) -> Callable[[Any], Any]:
    """The recipe's ``scheduler=``: 10x drops at 1/3 and 2/3 of ``epochs``."""
    milestones = [max(1, epochs // 3), max(2, 2 * epochs // 3)]
    return lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones, 0.1)


class _LevelBatches:
    """The engine's batch plan: each epoch's batches (order from ``seed * 1000 + epoch``), each
    repeated ``repeats`` times in a row (one step per level in ``mode="sequential"``)."""

    def __init__(self, n: int, batch_size: int, seed: int, repeats: int) -> None:
        self.n, self.batch_size, self.seed, self.repeats = n, batch_size, seed, repeats

    def plan(self, epoch: int) -> list[torch.Tensor]:
        order = torch.randperm(self.n, generator=make_generator(self.seed * 1000 + epoch))
        return [idx for idx in order.split(self.batch_size) for _ in range(self.repeats)]

    @property
    def n_batches(self) -> int:
        """Distinct batches per epoch."""
        return -(-self.n // self.batch_size)


class _LevelTraining(Callback):
    """The hierarchical losses as engine hooks, and the finest-level loss history.

    ``on_batch_start`` puts the finest-level targets in ``batch.y`` (what the finest head,
    ``output_fn``, is scored against) and, in ``mode="sequential"``, advances the level
    counter: the ``r``-th repetition of a batch trains level ``r``.
    """

    def __init__(
        self, mode: str, targets: list[torch.Tensor], epochs: int, batches: _LevelBatches
    ) -> None:
        self.mode, self.targets, self.epochs, self.batches = mode, targets, epochs, batches
        self.history: list[float] = []
        self._epoch, self._step, self._level, self._total = 0, 0, 0, 0.0

    def on_epoch_start(self, ctx: TrainContext) -> None:
        self._epoch, self._step, self._total = ctx.epoch, 0, 0.0

    def on_batch_start(self, ctx: TrainContext, batch: Batch) -> Batch:
        self._level = self._step % self.batches.repeats
        self._step += 1
        assert batch.index is not None
        return Batch(batch.x, self.targets[-1][batch.index].to(ctx.device), batch.index)

    def loss(self, output: Any, batch: Batch) -> torch.Tensor:
        """Per-sample losses (B,) of the mode; their batch mean is the recipe's loss."""
        logits = _outputs(output, len(self.targets))
        assert batch.index is not None
        ys = [t[batch.index].to(batch.y.device) for t in self.targets]
        if self.mode == "sequential":  # level l's mean(CE_l * V_l), masks from this forward
            lvl = self._level
            masks = validity_masks(logits, ys)
            return F.cross_entropy(logits[lvl], ys[lvl], reduction="none") * masks[lvl]
        if self.mode == "combined":  # sum_l mean(CE_l * V_l) = mean of sum_l CE_l * V_l
            masks = validity_masks(logits, ys)
            parts = [
                F.cross_entropy(lg, t, reduction="none") * v for lg, t, v in zip(logits, ys, masks)
            ]
            return torch.stack(parts).sum(dim=0)
        # "bcnn" (scheduled weights, no masks) or "flat" (one level, weight 1)
        weights = bcnn_weights(self._epoch, self.epochs, len(ys))
        parts = [F.cross_entropy(lg, t, reduction="none") for lg, t in zip(logits, ys)]
        zero = torch.zeros(len(ys[0]), device=ys[0].device)
        return sum((w * p for w, p in zip(weights, parts)), zero)

    def on_batch_end(self, ctx: TrainContext, out: BatchOutput) -> None:
        if self._level == self.batches.repeats - 1:  # the batch's last step
            self._total += float(F.cross_entropy(out.logits, out.y))

    def on_epoch_end(self, ctx: TrainContext, metrics: dict[str, Any]) -> None:
        self.history.append(self._total / self.batches.n_batches)
        metrics["finest_loss"] = self.history[-1]


def _finest(output: Any) -> torch.Tensor:
    """``output_fn``: the finest (last) level's logits."""
    if isinstance(output, torch.Tensor):
        return output
    levels = list(output)
    if not levels:
        raise ValueError("the model returned no level logits")
    return levels[-1]


def _outputs(out: Any, n_levels: int) -> list[torch.Tensor]:
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    if len(out) != n_levels:
        raise ValueError(f"the model must return {n_levels} level logits, got {len(out)}")
    return out


@torch.no_grad()
def predict_leaves(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Leaf predictions (N,) on the CPU from the finest (last) head only, as the paper
    evaluates; batches are sent to the model's device."""
    model.eval()
    param = next(model.parameters(), None)
    device = torch.device("cpu") if param is None else param.device
    preds = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size].to(device))
        last = out if isinstance(out, torch.Tensor) else out[-1]
        preds.append(last.argmax(1).cpu())
    return torch.cat(preds)


def _check_levels(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
    if len(logits) != len(targets) or not logits:
        raise ValueError(
            f"need one target per level, got {len(logits)} logits, {len(targets)} targets"
        )
    for lg, y in zip(logits, targets):
        if lg.ndim != 2 or y.shape != (lg.shape[0],):
            raise ValueError(
                f"each level needs logits (N, K_l) and targets (N,), got {tuple(lg.shape)} and "
                f"{tuple(y.shape)}"
            )
