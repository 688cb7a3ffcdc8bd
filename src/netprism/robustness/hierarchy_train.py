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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.seed import make_generator, seed_everything
from netprism.core.validation import check_finite, check_positive_int
from netprism.data.base import as_tensors
from netprism.robustness.hierarchy import LabelTree

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


def conditional_fit(
    model: nn.Module,
    data: Any,
    tree: LabelTree,
    *,
    mode: str = "sequential",
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    seed: int = 0,
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
    epochs, batch_size, lr, momentum, weight_decay, seed
        SGD with momentum; the learning rate drops 10x at 1/3 and 2/3 of training (the
        official schedule: every 150 of 450 epochs).

    Returns
    -------
    list of float
        Mean finest-level training cross-entropy per epoch.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    x, y = as_tensors(data)
    check_finite(x, "x")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    tree.check_labels(y, "y")
    targets = [y] if mode == "flat" else tree.level_labels(y)
    seed_everything(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [max(1, epochs // 3), max(2, 2 * epochs // 3)], 0.1
    )
    history = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=make_generator(seed * 1000 + epoch))
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            ys = [t[idx] for t in targets]
            total += _step(model, opt, x[idx], ys, mode, bcnn_weights(epoch, epochs, len(ys)))
        history.append(total / -(-len(x) // batch_size))
        sched.step()
    model.eval()
    return history


def _step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    xb: torch.Tensor,
    ys: list[torch.Tensor],
    mode: str,
    weights: list[float],
) -> float:
    """One batch; returns the finest level's unmasked cross-entropy (for the history)."""
    if mode == "sequential":
        # one forward/backward/step per level, coarse to fine; masks from the fresh forward
        for level in range(len(ys)):
            logits = _outputs(model, xb, len(ys))
            loss = level_losses(logits, ys)[level]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(F.cross_entropy(logits[-1].detach(), ys[-1]))
    logits = _outputs(model, xb, len(ys))
    if mode == "combined":
        loss = torch.stack(level_losses(logits, ys)).sum()
    else:  # "bcnn" (scheduled weights, no masks) or "flat" (one level, weight 1)
        parts = level_losses(logits, ys, masked=False)
        loss = sum((w * p for w, p in zip(weights, parts)), torch.zeros(()))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(F.cross_entropy(logits[-1].detach(), ys[-1]))


def _outputs(model: nn.Module, xb: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    out = model(xb)
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    if len(out) != n_levels:
        raise ValueError(f"the model must return {n_levels} level logits, got {len(out)}")
    return out


@torch.no_grad()
def predict_leaves(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Leaf predictions (N,) from the finest (last) head only, as the paper evaluates."""
    model.eval()
    preds = []
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        last = out if isinstance(out, torch.Tensor) else out[-1]
        preds.append(last.argmax(1))
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
