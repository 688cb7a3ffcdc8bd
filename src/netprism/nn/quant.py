"""Binary and k-bit quantized layers with straight-through gradients.

XNOR-Net weights and activations (Rastegari, Ordonez, Redmon & Farhadi, "XNOR-Net: ImageNet
Classification Using Binary Convolutional Neural Networks", ECCV 2016, arXiv 1603.05279) and
the k-bit layers of Hybrid-Net (Chakraborty, Roy, Garg, Ankit & Roy, "Constructing
Energy-efficient Mixed-precision Neural Networks through Principal Component Analysis for Edge
Intelligence", Nature Machine Intelligence 2020, arXiv 1906.01493).

Precisions are given in bits: ``1`` = binary, ``2..16`` = k-bit uniform, ``32`` = full
precision.

- Binary weights: ``alpha * sign(W)``, ``alpha = mean|W|`` per output filter; identity
  straight-through gradient (STE).
- Binary activations: ``sign(x)``; the STE passes the gradient where ``|x| <= 1``.
- k-bit activations: ``2^k`` uniform levels on ``[-1, 1]`` (inputs clipped first); the STE
  passes the gradient inside the clip.
- k-bit weights: ``2^k`` symmetric uniform levels on ``[-s, s]``, ``s = max|W|`` per output
  filter; identity STE.

``sign(0)`` is taken as ``+1`` so a binary tensor holds exactly two values.

This module is also where the library's one uniform quantizer is imported from
(:func:`uniform_scale`, :func:`fake_quantize`, :func:`quantize`, :func:`dequantize`; defined in
:mod:`netprism.nn.uniform`): the k-bit layers here, the 2-bit QAT, 4-bit embeddings and 8-bit
KV cache of ``netprism.lm`` and the post-training weight quantization of ``netprism.spiking``
all call it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.nn.uniform import (
    GRIDS,
    Quantized,
    absmax,
    dequantize,
    fake_quantize,
    grid_max,
    quantize,
    uniform_scale,
)

__all__ = [
    "FP_ACTS",
    "FULL_PRECISION",
    "GRIDS",
    "MAX_K_BITS",
    "QuantAct",
    "QuantConv1d",
    "QuantConv2d",
    "QuantLinear",
    "Quantized",
    "absmax",
    "binarize_weight",
    "binary_act",
    "check_bits",
    "dequantize",
    "fake_quantize",
    "grid_max",
    "quantize",
    "quantize_act",
    "quantize_weight",
    "uniform_scale",
]

FULL_PRECISION = 32
MAX_K_BITS = 16


def check_bits(bits: Any, name: str = "bits") -> int:
    """Validate a precision: 1 (binary), 2..16 (k-bit) or 32 (full precision).

    Examples
    --------
    >>> check_bits(2)
    2
    """
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"{name} must be an int (1, 2..16 or 32), got {bits!r}")
    if not (1 <= bits <= MAX_K_BITS or bits == FULL_PRECISION):
        raise ValueError(
            f"{name} must be 1 (binary), 2..{MAX_K_BITS} (k-bit) or 32 (full precision), got {bits}"
        )
    return bits


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _uniform_levels(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round ``x`` in [-1, 1] to the nearest of 2^bits uniform levels on [-1, 1]."""
    return fake_quantize(x, bits, symmetric=False, bounds=(-1.0, 1.0), ste=False)


def _filter_dims(w: torch.Tensor) -> tuple[int, ...]:
    if w.ndim < 2:
        raise ValueError(f"weights must be (C_out, ...) with >= 2 dims, got shape {tuple(w.shape)}")
    return tuple(range(1, w.ndim))


class _BinarizeWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        alpha = w.abs().mean(dim=_filter_dims(w), keepdim=True)  # (C_out, 1, ...)
        return alpha * _sign(w)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad  # identity STE


class _BinaryAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _sign(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1.0).to(grad.dtype)


class _QuantizeAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bits: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _uniform_levels(x.clamp(-1.0, 1.0), bits)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1.0).to(grad.dtype), None


class _QuantizeWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, bits: int) -> torch.Tensor:
        _filter_dims(w)  # raises unless w is (C_out, ...) with >= 2 dims
        scale = absmax(w, axis=0)  # (C_out, 1, ...)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero filter
        return _uniform_levels(w / scale, bits) * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None  # identity STE


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """XNOR-Net weights ``alpha * sign(W)``, one ``alpha = mean|W|`` per output filter.

    Parameters
    ----------
    w : Tensor (C_out, ...)

    Returns
    -------
    Tensor, same shape; gradient passes unchanged (identity STE).

    Examples
    --------
    >>> binarize_weight(torch.tensor([[1.0, -3.0], [0.5, 0.5]])).tolist()
    [[2.0, -2.0], [0.5, 0.5]]
    """
    return _BinarizeWeight.apply(w)


def binary_act(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` in {-1, +1} (0 maps to +1); the gradient passes where ``|x| <= 1``.

    Examples
    --------
    >>> binary_act(torch.tensor([-2.0, -0.5, 0.0, 0.3])).tolist()
    [-1.0, -1.0, 1.0, 1.0]
    """
    return _BinaryAct.apply(x)


def quantize_act(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Activations at ``bits``: 1 = :func:`binary_act`, k = 2^k uniform levels on [-1, 1]
    after clipping (gradient passes inside the clip), 32 = unchanged.

    Examples
    --------
    >>> (3 * quantize_act(torch.tensor([-2.0, -0.2, 0.2, 0.5]), 2)).round().tolist()
    [-3.0, -1.0, 1.0, 1.0]
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return x
    if bits == 1:
        return binary_act(x)
    return _QuantizeAct.apply(x, bits)


def quantize_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Weights ``w`` (C_out, ...) at ``bits``: 1 = :func:`binarize_weight`, k = 2^k symmetric
    uniform levels on ``[-max|W|, max|W|]`` per output filter, 32 = unchanged; identity STE.

    Examples
    --------
    >>> quantize_weight(torch.tensor([[3.0, 1.2, -0.9]]), 2).round(decimals=4).tolist()
    [[3.0, 1.0, -1.0]]
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        return binarize_weight(w)
    return _QuantizeWeight.apply(w, bits)


class _WeightBits:
    """Shared by the quantized layers: the ``weight_bits`` knob and its ``extra_repr``."""

    def __init__(self: Any, *args: Any, weight_bits: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_bits = check_bits(weight_bits, "weight_bits")

    def extra_repr(self: Any) -> str:
        base = super().extra_repr()  # type: ignore[misc]  # the nn layer next in the MRO
        return f"{base}, weight_bits={self.weight_bits}"


class _QuantConv(_WeightBits):
    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, quantize_weight(self.weight, self.weight_bits), self.bias)


class QuantConv1d(_QuantConv, nn.Conv1d):
    """``nn.Conv1d`` whose weights are quantized to ``weight_bits`` in every forward.

    The float weights are kept as the trained parameters (the "latent" weights of XNOR-Net).

    Examples
    --------
    >>> conv = QuantConv1d(2, 3, 3, padding=1, bias=False, weight_bits=1)
    >>> conv(torch.randn(4, 2, 10)).shape
    torch.Size([4, 3, 10])
    """


class QuantConv2d(_QuantConv, nn.Conv2d):
    """``nn.Conv2d`` whose weights are quantized to ``weight_bits`` in every forward.

    Examples
    --------
    >>> conv = QuantConv2d(1, 4, 3, padding=1, weight_bits=2)
    >>> conv(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 4, 8, 8])
    """


class QuantLinear(_WeightBits, nn.Linear):
    """``nn.Linear`` whose weights (K, D) are quantized to ``weight_bits`` per output unit.

    Examples
    --------
    >>> QuantLinear(5, 3, weight_bits=1)(torch.randn(2, 5)).shape
    torch.Size([2, 3])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, quantize_weight(self.weight, self.weight_bits), self.bias)


FP_ACTS = ("hardtanh", "identity", "relu")


class QuantAct(nn.Module):
    """Activation quantizer: 1 = ``sign``, k = 2^k levels on [-1, 1], 32 = full precision.

    Parameters
    ----------
    bits : int
        1, 2..16 or 32.
    full_precision : {"hardtanh", "identity", "relu"}
        What ``bits=32`` applies: ``hardtanh`` (default; the clip a quantized net feeds its
        full-precision layers, as in XNOR-Net's last layer), ``identity`` or ``relu``.

    Examples
    --------
    >>> QuantAct(1)(torch.tensor([-0.3, 2.0])).tolist()
    [-1.0, 1.0]
    >>> QuantAct(32)(torch.tensor([-3.0, 0.5])).tolist()
    [-1.0, 0.5]
    """

    def __init__(self, bits: int, *, full_precision: str = "hardtanh") -> None:
        super().__init__()
        self.bits = check_bits(bits)
        if full_precision not in FP_ACTS:
            raise ValueError(f"full_precision must be one of {FP_ACTS}, got {full_precision!r}")
        self.full_precision = full_precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits != FULL_PRECISION:
            return quantize_act(x, self.bits)
        if self.full_precision == "hardtanh":
            return F.hardtanh(x)
        if self.full_precision == "relu":
            return F.relu(x)
        return x

    def extra_repr(self) -> str:
        extra = f", full_precision={self.full_precision}" if self.bits == FULL_PRECISION else ""
        return f"bits={self.bits}{extra}"
