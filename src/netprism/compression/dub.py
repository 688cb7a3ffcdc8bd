"""D.U.B. (Discrete, Unstructured, Balanced) pruning for cheap crossbar ADCs, and its baselines.

Ibrayev, Garg, Chakraborty & Roy, "Pruning for Improved ADC Efficiency in Crossbar-based
Analog In-memory Accelerators", arXiv 2403.13082 (2024).  The recipe (and its
small-scale calibration on digits) is described in :mod:`netprism.experiments.dub_crossbar`.

1. Train with ``CE + lam * sum_crossbars Var_columns(H(column))``, ``H`` the Hoyer measure
   ``(sum|w|)^2 / (sum w^2 + 1e-6)`` of each column segment, and a one-sided gate: only
   columns denser (higher ``H``) than their crossbar's mean receive gradient, so the variance
   falls by sparsifying dense columns, never by densifying sparse ones.
2. Snap: per crossbar, the zero fraction ``x`` of the least-sparse column (``|w| <= t``) is
   rounded to the nearer level ``1 - 2^-k`` (midpoint rule) and every column keeps its
   ``T 2^-k`` largest weights; a global ``t`` is found by bisection so that the overall
   sparsity equals the target.
3. Fine-tune with the masks re-applied after every optimizer step.

Baselines: global and layer-wise magnitude pruning at the same sparsity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netprism.compression.crossbar import (
    ZERO_LEVEL,
    _check_size,
    mapped_layers,
    module_weight,
    tile_real_mask,
    tile_weights,
    untile,
)
from netprism.core.validation import check_fraction
from netprism.train.callbacks import Callback, TrainContext
from netprism.train.config import TrainConfig
from netprism.train.loop import FitResult, fit

SCOPES = ("global", "layer")


def hoyer(x: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
    """Hoyer measure ``(sum|x|)^2 / (sum x^2 + eps)`` along ``dim``: a differentiable L0.

    Equals the nonzero count when the nonzeros share a magnitude, is scale-invariant and is 0
    (finite) on an all-zero vector.

    Examples
    --------
    >>> round(float(hoyer(torch.tensor([0.0, 2.0, -2.0, 0.0, 2.0]))), 4)
    3.0
    """
    return x.abs().sum(dim) ** 2 / ((x * x).sum(dim) + eps)


class _PositiveGrad(torch.autograd.Function):
    """Identity forward; backward passes only the positive part of the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        return h.view_as(h)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0.0)


def one_sided_gate(h: torch.Tensor) -> torch.Tensor:
    """Identity whose gradient is clamped to ``>= 0``.

    On ``Var(H)`` the gradient w.r.t. ``H_i`` is ``2 (H_i - mean) / (n - 1)``: positive
    exactly for the columns above their crossbar's mean, so only those are pushed (sparser).
    """
    return _PositiveGrad.apply(h)


def column_hoyer(weight: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hoyer measure of every crossbar column segment of ``weight``.

    Returns
    -------
    H : Tensor (n_tiles, T)
        ``H[t, c]`` of column ``c`` of crossbar ``t`` (padded rows add nothing); differentiable.
    real : BoolTensor (n_tiles, T)
        False for padded (non-existent) output channels.
    """
    tiles = tile_weights(weight, size)  # (n, T rows, T cols)
    real = tile_real_mask(weight.shape, size).any(dim=1).to(weight.device)  # (n, T)
    return hoyer(tiles, dim=1), real


def hoyer_variance(
    weights: Sequence[torch.Tensor], size: int, *, gate: bool = True
) -> torch.Tensor:
    """D.U.B. regularizer: ``sum_crossbars`` unbiased ``Var`` of ``H`` over the real columns.

    Parameters
    ----------
    weights : sequence of Tensor (C_out, C_in, *k)
    size : int
        Crossbar rows = columns.
    gate : bool
        Apply :func:`one_sided_gate` to ``H`` (the paper's recipe).

    Returns
    -------
    Tensor ()
        0 when every crossbar's columns share ``H``.

    Examples
    --------
    >>> float(hoyer_variance([torch.ones(4, 8)], 8))  # identical columns
    0.0
    """
    total = torch.zeros((), device=weights[0].device if weights else None)
    for w in weights:
        h, real = column_hoyer(w, size)
        if gate:
            h = one_sided_gate(h)
        m = real.to(h.dtype)  # (n, T)
        count = m.sum(dim=1)  # (n,)
        mean = (h * m).sum(dim=1) / count
        sq = ((h - mean[:, None]) ** 2 * m).sum(dim=1)  # (n,)
        total = total + (sq / (count - 1).clamp(min=1)).sum()
    return total


class DUBRegularizer(Callback):
    """D.U.B.'s training penalty as an engine callback: ``lam`` x :func:`hoyer_variance`.

    Every step adds ``lam * hoyer_variance(weights, size, gate=gate)`` of the model's mapped
    layers (``Conv1d/2d``, ``Linear``) to the batch's mean loss; after every epoch the mean
    *unscaled* regularizer over the epoch's steps is recorded as ``metrics["reg"]``.

    Examples
    --------
    >>> from netprism.train import fit
    >>> x, y = torch.randn(32, 16), torch.randint(0, 3, (32,))
    >>> cfg = TrainConfig(epochs=2, lr=1e-2, optimizer="adam", progress=False)
    >>> out = fit(nn.Linear(16, 3), (x, y), cfg, callbacks=[DUBRegularizer(8, lam=1.0)])
    >>> sorted(out.history[-1])
    ['accuracy', 'epoch', 'loss', 'lr', 'reg']
    """

    def __init__(self, size: int, lam: float = 1e-3, *, gate: bool = True) -> None:
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam!r}")
        _check_size(size)
        self.size, self.lam, self.gate = size, lam, gate
        self._weights: list[torch.Tensor] = []
        self._sum: torch.Tensor | None = None
        self._steps = 0

    def on_fit_start(self, ctx: TrainContext) -> None:
        # Taken after fit moved the model to its device (``Module.to`` keeps the Parameters).
        self._weights = list(layer_weights(ctx.model).values())

    def on_epoch_start(self, ctx: TrainContext) -> None:
        # Summed in float64 on the device: the same sum as adding Python floats, no sync.
        self._sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        self._steps = 0

    def penalty(self, ctx: TrainContext, batch: Any) -> torch.Tensor:
        reg = hoyer_variance(self._weights, self.size, gate=self.gate)
        assert self._sum is not None
        self._sum += reg.detach().double()
        self._steps += 1
        return self.lam * reg

    def on_epoch_end(self, ctx: TrainContext, metrics: dict[str, Any]) -> None:
        assert self._sum is not None
        metrics["reg"] = float(self._sum) / max(self._steps, 1)


def fit_dub(
    model: nn.Module,
    train: Any,
    config: TrainConfig,
    *,
    size: int,
    lam: float = 1e-3,
    gate: bool = True,
) -> FitResult:
    """Train ``model`` on cross-entropy + ``lam`` x :func:`hoyer_variance` of its mapped layers.

    :func:`netprism.train.fit` with a :class:`DUBRegularizer` (same optimizer, schedule,
    per-epoch sample order, device and data handling); every ``Conv1d/2d`` and ``Linear``
    weight is regularized.

    Returns
    -------
    FitResult
        ``history[e]`` holds ``epoch``, ``loss`` (CE), ``reg`` (unscaled, mean over the
        epoch's steps), ``accuracy`` and ``lr``.
    """
    return fit(model, train, config, callbacks=[DUBRegularizer(size, lam, gate=gate)])


@dataclass
class SnapResult:
    """Masks of a snap to crossbar levels.

    ``masks[name]`` is a bool tensor shaped like that layer's weight (True = kept);
    ``levels[name]`` (n_tiles,) the level each crossbar was snapped to (a crossbar with fewer
    real rows than ``T 2^-k`` measures a higher level); ``threshold`` the global magnitude
    threshold ``t``; ``sparsity`` the zero fraction of the masks.
    """

    masks: dict[str, torch.Tensor]
    levels: dict[str, torch.Tensor]
    threshold: float
    sparsity: float


def _snap_keep(absw: torch.Tensor, size: int, t: float) -> torch.Tensor:
    """Weights kept per column ``(n_tiles,)`` for each crossbar of ``|w|`` at threshold ``t``."""
    nnz = (tile_weights(absw, size) > t).sum(dim=1).max(dim=1).values  # (n,) densest column
    k_lo = torch.floor(torch.log2(size / nnz.clamp(min=1).double()) + 1e-9)
    keep = torch.round(size * torch.exp2(-k_lo)).long()  # T 2^-k >= nnz > T 2^-(k+1)
    # Midpoint rule: x >= (s_k + s_k+1) / 2  <=>  nnz <= 0.75 T 2^-k  ->  force to level k+1.
    keep = torch.where(nnz <= 0.75 * keep, keep // 2, keep)
    return torch.where(nnz == 0, torch.zeros_like(keep), keep)


def _kept_count(shape: torch.Size, size: int, keep: torch.Tensor) -> int:
    real = tile_real_mask(shape, size).to(keep.device)  # (n, T, T)
    rows, cols = real[:, :, 0].sum(1), real[:, 0, :].sum(1)  # (n,), (n,)
    return int((torch.minimum(keep, rows) * cols).sum())


def snap_masks(
    weights: Mapping[str, torch.Tensor], size: int, threshold: float
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Snap every crossbar at magnitude ``threshold``; return ``(masks, levels)`` per layer.

    Every real column of a crossbar at level ``k`` keeps its ``T 2^-k`` largest weights
    (fewer only where the crossbar has fewer real rows).

    Examples
    --------
    >>> w = torch.tensor([[3.0, 2.0, 0.1, 0.1], [0.1, 0.2, 5.0, 4.0]])  # 2 columns, 4 rows
    >>> masks, levels = snap_masks({"w": w}, 4, 0.5)
    >>> masks["w"].sum(dim=1).tolist(), levels["w"].tolist()
    ([2, 2], [1])
    """
    masks, levels = {}, {}
    for name, w in weights.items():
        absw = w.detach().abs()
        keep = _snap_keep(absw, size, threshold)  # (n,)
        real = tile_real_mask(w.shape, size).to(absw.device)  # (n, T, T)
        key = tile_weights(absw, size).masked_fill(~real, -1.0)
        order = key.argsort(dim=1, descending=True, stable=True)  # (n, T, T) per column
        rank = order.argsort(dim=1)
        masks[name] = untile(rank < keep[:, None, None], w.shape)
        lv = torch.log2(size / keep.clamp(min=1).double()).round().long()
        levels[name] = torch.where(keep == 0, torch.full_like(lv, ZERO_LEVEL), lv)
    return masks, levels


def snap_to_sparsity(
    weights: Mapping[str, torch.Tensor], size: int, sparsity: float, *, iters: int = 60
) -> SnapResult:
    """Snap to crossbar levels with the global threshold whose sparsity is nearest ``sparsity``.

    Parameters
    ----------
    weights : mapping name -> Tensor (C_out, C_in, *k)
    size : int
        Crossbar rows = columns.
    sparsity : float in [0, 1)
        Target zero fraction over all given weights.
    iters : int
        Bisection steps on the threshold in ``[0, max|w|]``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> snap = snap_to_sparsity({"a": torch.randn(32, 64, generator=g)}, 16, 0.75)
    >>> round(snap.sparsity, 3)
    0.75
    """
    check_fraction(sparsity, "sparsity")
    _check_size(size)
    if not weights:
        raise ValueError("weights must name at least one layer")
    absw = {n: w.detach().abs() for n, w in weights.items()}
    total = sum(w.numel() for w in absw.values())

    def achieved(t: float) -> float:
        kept = sum(_kept_count(w.shape, size, _snap_keep(w, size, t)) for w in absw.values())
        return 1.0 - kept / total

    lo, hi = 0.0, max(float(w.max()) for w in absw.values())
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if achieved(mid) < sparsity else (lo, mid)
    t = min((lo, hi), key=lambda v: abs(achieved(v) - sparsity))
    masks, levels = snap_masks(weights, size, t)
    kept = sum(int(m.sum()) for m in masks.values())
    return SnapResult(masks, levels, t, 1.0 - kept / total)


def magnitude_masks(
    weights: Mapping[str, torch.Tensor], sparsity: float, *, scope: str = "global"
) -> dict[str, torch.Tensor]:
    """Unstructured magnitude pruning: zero the ``round(sparsity * n)`` smallest ``|w|``.

    ``scope="global"`` ranks all given weights together, ``"layer"`` ranks each layer alone.

    Examples
    --------
    >>> m = magnitude_masks({"a": torch.tensor([1.0, -4.0, 2.0, 3.0])}, 0.5)
    >>> m["a"].tolist()
    [False, True, False, True]
    """
    check_fraction(sparsity, "sparsity")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if not weights:
        raise ValueError("weights must name at least one layer")
    names = list(weights)
    groups = [names] if scope == "global" else [[n] for n in names]
    masks: dict[str, torch.Tensor] = {}
    for group in groups:
        flat = torch.cat([weights[n].detach().abs().reshape(-1) for n in group])
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[flat.argsort(stable=True)[: round(sparsity * flat.numel())]] = False
        for n, part in zip(group, keep.split([weights[n].numel() for n in group])):
            masks[n] = part.reshape(weights[n].shape)
    return masks


def layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of the mapped layers (``Conv1d/2d``, ``Linear``) by module name."""
    return {n: module_weight(m) for n, m in mapped_layers(model).items()}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned weights of ``model`` in place (``masks`` by module name)."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in modules:
            raise ValueError(f"mask names module {name!r}, which the model does not have")
        weight = module_weight(modules[name])
        if mask.shape != weight.shape:
            raise ValueError(
                f"mask of {name!r} has shape {tuple(mask.shape)}, weight {tuple(weight.shape)}"
            )
        weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))


class MaskCallback(Callback):
    """Re-apply pruning masks before training and after every optimizer step."""

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        self.masks = dict(masks)

    def on_fit_start(self, ctx: TrainContext) -> None:
        # Masks move once to the device fit trains on (they may come from a CPU copy).
        self.masks = {n: m.to(ctx.device) for n, m in self.masks.items()}
        apply_masks(ctx.model, self.masks)

    def on_after_step(self, ctx: TrainContext, batch: Any) -> None:
        apply_masks(ctx.model, self.masks)


def masked_finetune(
    model: nn.Module, masks: Mapping[str, torch.Tensor], train: Any, config: TrainConfig
) -> FitResult:
    """Fine-tune ``model`` with :func:`netprism.train.fit`, keeping pruned weights at zero."""
    return fit(model, train, config, callbacks=[MaskCallback(masks)])


def dub_prune(
    model: nn.Module,
    train: Any,
    *,
    size: int = 64,
    sparsity: float = 0.75,
    lam: float = 1e-3,
    reg_config: TrainConfig | None = None,
    finetune_config: TrainConfig | None = None,
) -> SnapResult:
    """D.U.B. in one call: regularized training, snap to ``sparsity``, masked fine-tuning.

    ``model`` (ideally pretrained) is changed in place; the returned masks are applied.
    Defaults follow the calibration: Adam 1e-3, cosine, 10 + 10 epochs, batch 64.
    """
    base = TrainConfig(epochs=10, lr=1e-3, optimizer="adam", weight_decay=0.0, progress=False)
    fit_dub(model, train, reg_config or base, size=size, lam=lam)
    snap = snap_to_sparsity(layer_weights(model), size, sparsity)
    masked_finetune(model, snap.masks, train, finetune_config or base)
    return snap


def columns_nonzero(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Nonzero count of every crossbar column ``(n_tiles, T)`` (padded columns report 0)."""
    return (tile_weights(weight.detach(), size) != 0).sum(dim=1)


def levels_keep(levels: torch.Tensor, size: int) -> torch.Tensor:
    """Weights kept per column at each level: ``T 2^-k`` (0 for :data:`ZERO_LEVEL`)."""
    keep = torch.round(size * torch.exp2(-levels.clamp(min=0).double())).long()
    return torch.where(levels == ZERO_LEVEL, torch.zeros_like(keep), keep)


__all__ = [
    "SCOPES",
    "DUBRegularizer",
    "MaskCallback",
    "SnapResult",
    "apply_masks",
    "column_hoyer",
    "columns_nonzero",
    "dub_prune",
    "fit_dub",
    "hoyer",
    "hoyer_variance",
    "layer_weights",
    "levels_keep",
    "magnitude_masks",
    "masked_finetune",
    "one_sided_gate",
    "snap_masks",
    "snap_to_sparsity",
]
