"""Crossbar mapping and the ADC-energy model of analog in-memory accelerators.

Ibrayev, Garg, Chakraborty & Roy, "Pruning for Improved ADC Efficiency in Crossbar-based
Analog In-memory Accelerators", arXiv 2403.13082 (2024).

A conv or linear weight is flattened to ``(C_out, C_in*k*k)``; each output channel's fan-in
vector occupies one crossbar column (crossbar rows = inputs), and the matrix is cut into
``T x T`` crossbars with zero padding at the edges.  A crossbar's ADC needs
``ceil(log2 T) + 2`` bits; when the least-sparse column of a crossbar has a zero fraction of at
least ``1 - 2^-k`` (padded rows count as zeros), the worst column sum has at most ``T 2^-k``
terms and the ADC needs ``k`` bits fewer.  An all-zero crossbar needs no conversion at all.

ADC energy is ``sum_crossbars conversions * E(bits)`` with a pluggable ``E``: ``"exp2"``
(``2^b``, flash / Walden-FOM style, the default) or ``"linear"`` (``a b + c``, SAR-like).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

ZERO_LEVEL = -1  # level of an all-zero crossbar: no ADC conversions at all

# The 8 conv layers of VGG11 for CIFAR (C_out, C_in, k, k): 9,217,728 weights.
VGG11_CIFAR_CONV_SHAPES: tuple[tuple[int, int, int, int], ...] = tuple(
    (o, i, 3, 3)
    for i, o in zip((3, 64, 128, 256, 256, 512, 512, 512), (64, 128, 256, 256, 512, 512, 512, 512))
)

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def _check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 2:
        raise ValueError(f"crossbar size must be an int >= 2, got {size!r}")
    return size


def base_adc_bits(size: int) -> int:
    """ADC bits of a dense ``size x size`` crossbar: ``ceil(log2(size)) + 2``.

    Examples
    --------
    >>> [base_adc_bits(t) for t in (16, 32, 64, 128, 256)]
    [6, 7, 8, 9, 10]
    """
    return math.ceil(math.log2(_check_size(size))) + 2


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """Flatten a conv / linear weight ``(C_out, C_in, *k)`` to ``(C_out, C_in*prod(k))``."""
    if weight.ndim < 2:
        raise ValueError(f"weight must have >= 2 dims (C_out, fan_in, ...), got {weight.ndim}")
    return weight.reshape(weight.shape[0], -1)


def tile_grid(shape: Sequence[int], size: int) -> tuple[int, int]:
    """``(row_tiles, col_tiles)`` of a weight of ``shape`` ``(C_out, C_in, *k)``.

    Examples
    --------
    >>> tile_grid((128, 64, 3, 3), 64)
    (9, 2)
    """
    _check_size(size)
    if len(shape) < 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f"weight shape must be (C_out, fan_in, ...) > 0, got {tuple(shape)}")
    fan_in = math.prod(int(s) for s in shape[1:])
    return -(-fan_in // size), -(-int(shape[0]) // size)


def count_crossbars(shapes: Sequence[Sequence[int]], size: int) -> int:
    """Number of ``size x size`` crossbars needed by weights of the given shapes.

    Examples
    --------
    >>> [count_crossbars(VGG11_CIFAR_CONV_SHAPES, t) for t in (32, 64, 128, 256)]
    [9002, 2251, 564, 144]
    """
    return sum(math.prod(tile_grid(s, size)) for s in shapes)


def tile_weights(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Cut a weight into zero-padded crossbars.

    Parameters
    ----------
    weight : Tensor (C_out, C_in, *k) or (C_out, fan_in)
    size : int
        Crossbar rows = columns = ``T``.

    Returns
    -------
    Tensor (n_tiles, T, T)
        ``[t, r, c]`` = input ``r`` of output channel ``c`` in crossbar ``t``; tiles ordered
        row-tile-major (fan-in blocks outer, output-channel blocks inner).  Differentiable.

    Examples
    --------
    >>> tile_weights(torch.ones(3, 5), 4).shape
    torch.Size([2, 4, 4])
    """
    size = _check_size(size)
    w = weight_matrix(weight).t()  # (fan_in, C_out): rows = inputs, columns = outputs
    rt, ct = -(-w.shape[0] // size), -(-w.shape[1] // size)
    w = nn.functional.pad(w, (0, ct * size - w.shape[1], 0, rt * size - w.shape[0]))
    # (rt*T, ct*T) -> (rt, T, ct, T) -> (rt, ct, T, T) -> (rt*ct, T, T)
    return w.reshape(rt, size, ct, size).permute(0, 2, 1, 3).reshape(rt * ct, size, size)


def tile_real_mask(shape: Sequence[int], size: int) -> torch.Tensor:
    """Bool ``(n_tiles, T, T)``: True where a crossbar cell holds a real (not padded) weight."""
    return tile_weights(torch.ones(int(shape[0]), math.prod(int(s) for s in shape[1:])), size) > 0


def untile(tiles: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`tile_weights`: ``(n_tiles, T, T)`` back to a weight of ``shape``."""
    size = tiles.shape[-1]
    rt, ct = tile_grid(shape, size)
    fan_in = math.prod(int(s) for s in shape[1:])
    # (rt*ct, T, T) -> (rt, ct, T, T) -> (rt, T, ct, T) -> (rt*T, ct*T)
    w = tiles.reshape(rt, ct, size, size).permute(0, 2, 1, 3).reshape(rt * size, ct * size)
    return w[:fan_in, : int(shape[0])].t().reshape(tuple(int(s) for s in shape))


def crossbar_levels(
    weight: torch.Tensor, size: int, *, threshold: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparsity level of every crossbar of ``weight`` and its number of real columns.

    A weight counts as zero when ``|w| <= threshold``.  With ``n`` the nonzero count of the
    crossbar's least-sparse real column, the level is the largest ``k`` with
    ``n <= T 2^-k`` (zero fraction ``>= 1 - 2^-k``); an all-zero crossbar gets
    :data:`ZERO_LEVEL`.

    Returns
    -------
    levels : LongTensor (n_tiles,)
    columns : LongTensor (n_tiles,)
        Real (not padded) output channels per crossbar.

    Examples
    --------
    >>> w = torch.zeros(4, 8); w[:, :2] = 1.0  # every column holds 2 of 8 rows
    >>> crossbar_levels(w, 8)[0].tolist()
    [2]
    """
    tiles = tile_weights(weight.detach(), size)  # (n, T, T)
    nnz = (tiles.abs() > threshold).sum(dim=1).max(dim=1).values  # (n,) densest column
    levels = torch.floor(torch.log2(size / nnz.clamp(min=1).double()) + 1e-9).long()
    levels[nnz == 0] = ZERO_LEVEL
    real = tile_real_mask(weight.shape, size)[:, 0, :].sum(dim=1)  # (n,) real columns
    return levels, real


def adc_bits(levels: torch.Tensor, base_bits: int) -> torch.Tensor:
    """Bits per crossbar: ``base_bits - k``; 0 for :data:`ZERO_LEVEL` crossbars."""
    levels = torch.as_tensor(levels).long()
    if bool((levels > base_bits).any()) or bool((levels < ZERO_LEVEL).any()):
        raise ValueError(
            f"levels must lie in [{ZERO_LEVEL}, {base_bits}] for a {base_bits}-bit base, "
            f"got range [{int(levels.min())}, {int(levels.max())}]"
        )
    return torch.where(levels == ZERO_LEVEL, torch.zeros_like(levels), base_bits - levels)


def adc_energy_model(name: str | EnergyFn = "exp2", *, a: float = 1.0, c: float = 0.0) -> EnergyFn:
    """Energy per conversion as a function of bits (zero bits cost nothing).

    Parameters
    ----------
    name : {"exp2", "linear"} or callable
        ``"exp2"``: ``E = 2^b`` (default); ``"linear"``: ``E = a b + c`` (a SAR ADC; NeuroSim
        uses ``a = 0.4710``, ``c = 1.9529`` uW per column).  A callable is used as given.

    Examples
    --------
    >>> adc_energy_model("linear", a=2.0, c=1.0)(torch.tensor([0, 3])).tolist()
    [0.0, 7.0]
    """
    if callable(name):
        return name
    if name == "exp2":
        return lambda b: torch.where(b > 0, torch.exp2(b.double()), torch.zeros_like(b.double()))
    if name == "linear":
        return lambda b: torch.where(b > 0, a * b.double() + c, torch.zeros_like(b.double()))
    raise ValueError(f"energy model must be 'exp2', 'linear' or a callable, got {name!r}")


def adc_energy_saving(
    levels: torch.Tensor,
    base_bits: int,
    *,
    conversions: torch.Tensor | None = None,
    model: str | EnergyFn = "exp2",
    **params: Any,
) -> float:
    """ADC-energy saving: every crossbar at ``base_bits`` over the crossbars at their levels.

    Parameters
    ----------
    levels : LongTensor (n_tiles,)
        Per-crossbar levels (:data:`ZERO_LEVEL` for all-zero crossbars).
    conversions : Tensor (n_tiles,), optional
        ADC conversions per crossbar (output positions x columns); equal weights if omitted.
    model, **params
        See :func:`adc_energy_model`.

    Examples
    --------
    >>> hist = (9, 57, 53, 25, 91, 213, 115, 1)  # VGG11 128x128, official log
    >>> round(adc_energy_saving(levels_from_histogram(hist), 9), 2)
    8.29
    >>> round(adc_energy_saving(levels_from_histogram(hist), 9, model="linear"), 2)
    1.87
    """
    levels = torch.as_tensor(levels).long().reshape(-1)
    weights = torch.ones(len(levels), dtype=torch.float64) if conversions is None else conversions
    weights = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if weights.shape != levels.shape or bool((weights < 0).any()):
        raise ValueError(
            f"conversions must be {len(levels)} non-negative counts (one per crossbar), "
            f"got shape {tuple(weights.shape)}"
        )
    energy = adc_energy_model(model, **params)
    base = float((weights * energy(torch.full_like(levels, base_bits))).sum())
    used = float((weights * energy(adc_bits(levels, base_bits))).sum())
    return math.inf if used == 0.0 else base / used


def levels_from_histogram(counts: Sequence[int], *, zero: int = 0) -> torch.Tensor:
    """Expand a level histogram (``counts[k]`` crossbars at level ``k``) to per-crossbar levels.

    ``zero`` all-zero crossbars are appended as :data:`ZERO_LEVEL`.

    Examples
    --------
    >>> levels_from_histogram((1, 2), zero=1).tolist()
    [0, 1, 1, -1]
    """
    if any(int(n) < 0 for n in counts) or zero < 0:
        raise ValueError(f"histogram counts must be >= 0, got {tuple(counts)} and zero={zero}")
    parts = [torch.full((int(n),), k, dtype=torch.long) for k, n in enumerate(counts)]
    return torch.cat([*parts, torch.full((zero,), ZERO_LEVEL, dtype=torch.long)])


def level_histogram(levels: torch.Tensor, size: int) -> dict[str, int]:
    """``{"zero": n, "0": n_0, ..., "K": n_K}`` with ``K = log2(size)`` (the top level)."""
    top = int(math.floor(math.log2(_check_size(size))))
    levels = torch.as_tensor(levels).long()
    out = {"zero": int((levels == ZERO_LEVEL).sum())}
    out.update({str(k): int((levels == k).sum()) for k in range(top + 1)})
    return out


@dataclass
class CrossbarReport:
    """Per-crossbar levels and ADC energy of a model mapped onto ``size x size`` crossbars.

    ``levels``, ``bits``, ``conversions`` and ``layer`` are ``(n_tiles,)`` over every mapped
    layer in module order; ``sparsity`` is the zero fraction of the mapped weights.
    """

    size: int
    base_bits: int
    layers: list[str]
    levels: torch.Tensor
    bits: torch.Tensor
    conversions: torch.Tensor
    layer: torch.Tensor
    sparsity: float

    def saving(self, model: str | EnergyFn = "exp2", **params: Any) -> float:
        """ADC-energy saving over every crossbar at base bits, weighted by conversions."""
        return adc_energy_saving(
            self.levels, self.base_bits, conversions=self.conversions, model=model, **params
        )

    def histogram(self) -> dict[str, int]:
        return level_histogram(self.levels, self.size)


def mapped_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers a crossbar accelerator maps: every ``Conv1d/2d`` and ``Linear``, by name."""
    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear)
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


def module_weight(module: nn.Module) -> torch.Tensor:
    """The ``weight`` tensor of a mapped layer (raises if it has none)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{type(module).__name__} has no weight tensor to map onto crossbars")
    return weight


def output_positions(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Output positions per sample of each mapped layer (``H_out W_out`` for a conv, 1 for a
    linear layer), measured with one forward pass of ``example`` ``(1, *input_shape)``."""
    layers = mapped_layers(model)
    found: dict[str, int] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            channels = out.shape[-1] if isinstance(module, nn.Linear) else out.shape[1]
            found[name] = out.numel() // (channels * out.shape[0])

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return found


def crossbar_report(
    model: nn.Module, example: torch.Tensor, size: int, *, threshold: float = 0.0
) -> CrossbarReport:
    """Map every conv / linear layer of ``model`` onto crossbars and read off their levels.

    Parameters
    ----------
    model : nn.Module
    example : Tensor (1, *input_shape)
        One input, for the output positions of each layer (conversions per crossbar =
        output positions x real columns).
    size : int
        Crossbar rows = columns.
    threshold : float
        Weights with ``|w| <= threshold`` count as zero.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Flatten(),
    ...                     nn.Linear(4 * 16, 3))
    >>> rep = crossbar_report(net, torch.zeros(1, 1, 4, 4), 16)
    >>> rep.conversions.tolist()  # conv: 16 positions x 4 columns; linear: 1 x 3 per tile
    [64.0, 3.0, 3.0, 3.0, 3.0]
    """
    positions = output_positions(model, example)
    levels, convs, owner, names = [], [], [], []
    zeros, total = 0, 0
    for i, (name, module) in enumerate(mapped_layers(model).items()):
        w = module_weight(module).detach()
        lv, cols = crossbar_levels(w, size, threshold=threshold)
        levels.append(lv)
        convs.append(cols.double() * positions[name])
        owner.append(torch.full_like(lv, i))
        names.append(name)
        zeros += int((w.abs() <= threshold).sum())
        total += w.numel()
    if not names:
        raise ValueError("model has no Conv1d, Conv2d or Linear layer to map onto crossbars")
    lv_all = torch.cat(levels)
    base = base_adc_bits(size)
    return CrossbarReport(
        size,
        base,
        names,
        lv_all,
        adc_bits(lv_all, base),
        torch.cat(convs),
        torch.cat(owner),
        zeros / total,
    )
