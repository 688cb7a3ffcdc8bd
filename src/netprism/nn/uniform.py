"""The uniform quantizer: symmetric or asymmetric, per tensor or per any axes, k bits.

One implementation for the whole library (re-exported by :mod:`netprism.nn.quant`):

- **symmetric, integer grid** ``{-q..q} * s``, ``q = 2^(b-1) - 1``, ``s = max|x| / q``: the
  k-bit weights of spatio-temporal SNN pruning (Chowdhury, Garg & Roy, IJCNN 2021, arXiv
  2104.12528), the 4-bit embeddings and 8-bit KV cache of "Apple Intelligence Foundation
  Language Models: Tech Report 2025" (arXiv 2507.13575);
- **symmetric, balanced grid** ``{-q, ..., -1/2, 1/2, ..., q} * s``, ``q = 2^(b-1) - 1/2`` (no
  zero level): that report's 2-bit QAT grid ``{-1.5, -0.5, 0.5, 1.5} * s``, nearest level
  with ties going up;
- **asymmetric**: ``2^b`` levels on ``[lo, hi]`` (the data's range per axis, or given), e.g.
  Hybrid-Net's k-bit activations on ``[-1, 1]`` (Chakraborty et al., Nature Machine
  Intelligence 2020, arXiv 1906.01493).

Two forms: :func:`fake_quantize` (float, same shape; rounding straight-through by default)
and :func:`quantize` -> :class:`Quantized` ``(codes, scale, zero_point)`` with
``x ~ (codes - zero_point) * scale`` (:func:`dequantize`).  Scales are clamped below at
``eps = 1e-12`` unless told otherwise.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

MAX_BITS = 32  # fake quantization (float); integer codes stop at MAX_CODE_BITS
MAX_CODE_BITS = 16  # codes are rounded in the input's float type: float32 is exact to 2^24

__all__ = [
    "GRIDS",
    "MAX_BITS",
    "MAX_CODE_BITS",
    "Quantized",
    "absmax",
    "dequantize",
    "fake_quantize",
    "grid_max",
    "quantize",
    "uniform_scale",
]

GRIDS = ("integer", "balanced")
Axis = int | tuple[int, ...] | None
Bound = float | torch.Tensor


class Quantized(NamedTuple):
    """Integer codes with their scale and zero point: ``x ~ (codes - zero_point) * scale``.

    ``codes`` has the shape of the input; ``scale`` and ``zero_point`` broadcast to it.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero_point: float | torch.Tensor

    def dequantize(self) -> torch.Tensor:
        """``(codes - zero_point) * scale``, the input's shape (see :func:`dequantize`)."""
        return dequantize(self.codes, self.scale, self.zero_point)


class _STERound(torch.autograd.Function):
    """``round`` or ``floor`` forward (exact), identity backward (straight-through)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, mode: str) -> torch.Tensor:
        return torch.floor(t) if mode == "floor" else torch.round(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def _round(t: torch.Tensor, mode: str, ste: bool) -> torch.Tensor:
    if ste:
        return _STERound.apply(t, mode)
    return torch.floor(t) if mode == "floor" else torch.round(t)


def _check_grid(bits: Any, grid: str, symmetric: bool = True) -> int:
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    low = 2 if symmetric and grid == "integer" else 1
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in [{low}, {MAX_BITS}] for this grid, got {bits!r}")
    return bits


def _check_options(
    symmetric: bool,
    grid: str,
    scale: torch.Tensor | None,
    bounds: tuple[Bound, Bound] | None,
    signed: bool = True,
) -> None:
    """Refuse options that the chosen form would silently ignore."""
    if symmetric and bounds is not None:
        raise ValueError("bounds apply to the asymmetric grid only: pass symmetric=False")
    if not symmetric and scale is not None:
        raise ValueError(
            "scale applies to the symmetric grids only: the asymmetric step comes from bounds"
        )
    if not symmetric and grid != "integer":
        raise ValueError(f"the asymmetric grid has no {grid!r} variant: use grid='integer'")
    if not signed and (grid == "balanced" or not symmetric):
        raise ValueError(
            "signed=False applies to the symmetric integer grid only (balanced "
            "and asymmetric codes are unsigned already)"
        )
    if bounds is not None:
        lo, hi = bounds
        if not isinstance(lo, torch.Tensor) and not isinstance(hi, torch.Tensor) and hi <= lo:
            raise ValueError(f"bounds must satisfy lo < hi, got {bounds!r}")


def _reduce_dims(x: torch.Tensor, axis: Axis) -> tuple[int, ...]:
    """The dims reduced over when ``axis`` keeps its own scale (None: all dims)."""
    kept = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    norm = []
    for a in kept:
        if isinstance(a, bool) or not isinstance(a, int) or not -x.ndim <= a < x.ndim:
            raise ValueError(f"axis {a!r} is out of range for a tensor with {x.ndim} dims")
        norm.append(a % x.ndim)
    return tuple(d for d in range(x.ndim) if d not in norm)


def grid_max(bits: int, grid: str = "integer") -> int | float:
    """The largest level in units of the scale: ``2^(b-1) - 1`` (integer), ``2^(b-1) - 1/2``
    (balanced).

    >>> grid_max(8), grid_max(2, "balanced")
    (127, 1.5)
    """
    bits = _check_grid(bits, grid)
    return 2 ** (bits - 1) - 1 if grid == "integer" else 2 ** (bits - 1) - 0.5


def absmax(x: torch.Tensor, axis: Axis = None) -> torch.Tensor:
    """``max|x|`` over every dim except ``axis`` (None: the whole tensor), keepdim.

    >>> absmax(torch.tensor([[1.0, -3.0], [0.5, 0.0]]), axis=0).flatten().tolist()
    [3.0, 0.5]
    """
    dims = _reduce_dims(x, axis)
    return x.abs().amax(dim=dims, keepdim=True) if dims else x.abs()  # amax(dim=()) takes all


def uniform_scale(
    x: torch.Tensor,
    bits: int,
    *,
    axis: Axis = None,
    grid: str = "integer",
    eps: float = 1e-12,
    clamp_absmax: bool = False,
) -> torch.Tensor:
    """Symmetric max-abs scale ``max|x| / grid_max(bits, grid)`` per ``axis``, keepdim.

    Parameters
    ----------
    x : Tensor (...)
    bits : int
    axis : int, tuple of int or None
        Dims that keep their own scale: None = per tensor, ``0`` = per output channel,
        ``tuple(range(x.ndim - 1))`` = per token (one scale per vector of the last dim).
    grid : {"integer", "balanced"}
    eps : float
        Lower bound of the scale (``0`` = none); with ``clamp_absmax`` it bounds ``max|x|``
        before the division instead.

    Returns
    -------
    Tensor, ``x``'s shape with every reduced dim of size 1

    >>> uniform_scale(torch.tensor([[2.54, -1.0], [0.0, 0.0]]), 8, axis=0).flatten().tolist()
    [0.019999999552965164, 9.999999960041972e-13]
    """
    top = grid_max(bits, grid)
    amax = absmax(x, axis)
    if clamp_absmax:
        return amax.clamp_min(eps) / top
    return (amax / top).clamp_min(eps) if eps > 0 else amax / top


def _asymmetric(
    x: torch.Tensor, bits: int, axis: Axis, bounds: tuple[Bound, Bound] | None, eps: float
) -> tuple[torch.Tensor, Any, int, Bound]:
    """The asymmetric grid on ``[lo, hi]`` (given, or the min and max of ``x`` per ``axis``):
    ``t = (x - lo) * (2^b - 1) / (hi - lo)``, the step, ``2^b - 1`` and ``lo``."""
    _check_grid(bits, "integer", symmetric=False)
    if bounds is not None:
        lo, hi = bounds
    elif dims := _reduce_dims(x, axis):
        lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    else:  # one scale per element
        lo, hi = x, x
    steps = 2**bits - 1
    width = hi - lo
    if isinstance(width, torch.Tensor):
        width = width.clamp_min(eps)
    return (x - lo) * (steps / width), width / steps, steps, lo


def fake_quantize(
    x: torch.Tensor,
    bits: int,
    *,
    scale: torch.Tensor | None = None,
    axis: Axis = None,
    symmetric: bool = True,
    grid: str = "integer",
    bounds: tuple[Bound, Bound] | None = None,
    ste: bool = True,
    eps: float = 1e-12,
) -> torch.Tensor:
    """``x`` snapped to a ``bits``-bit uniform grid (same shape and dtype), rounding
    straight-through when ``ste``.

    - symmetric ``"integer"``: ``clamp(round(x/s), -q, q) * s``, ``q = 2^(b-1) - 1``;
    - symmetric ``"balanced"``: ``clamp(floor(x/s) + 1/2, -q, q) * s``, ``q = 2^(b-1) - 1/2``
      (no zero level; at 2 bits the ``{-1.5, -0.5, 0.5, 1.5} s`` grid of Apple's 2-bit QAT);
    - asymmetric: ``2^b`` levels on ``[lo, hi]``, ``round((x - lo) (2^b - 1) / (hi - lo))``
      clamped to ``[0, 2^b - 1]``, times the step, plus ``lo``.

    ``scale`` defaults to :func:`uniform_scale` per ``axis``; ``bounds`` (floats or tensors
    broadcasting to ``x``) to the min and max of ``x`` per ``axis``.  Gradients: to ``x``
    through the division and the clamp (1/s * s inside, 0 outside), to a given ``scale``
    through the product.

    >>> fake_quantize(torch.tensor([-9.0, -0.3, 0.0, 0.7, 3.2]), 2, scale=torch.tensor(2.0),
    ...               grid="balanced")
    tensor([-3., -1.,  1.,  1.,  3.])
    >>> (3 * fake_quantize(torch.tensor([-1.0, -0.2, 0.2, 1.0]), 2, symmetric=False)).round()
    tensor([-3., -1.,  1.,  3.])
    """
    _check_options(symmetric, grid, scale, bounds)
    if not symmetric:
        t, step, steps, lo = _asymmetric(x, bits, axis, bounds, eps)
        return torch.clamp(_round(t, "round", ste), 0, steps) * step + lo
    top = grid_max(bits, grid)
    s = uniform_scale(x.detach(), bits, axis=axis, grid=grid, eps=eps) if scale is None else scale
    if grid == "integer":
        return torch.clamp(_round(x / s, "round", ste), -top, top) * s
    return torch.clamp(_round(x / s, "floor", ste) + 0.5, -top, top) * s


def _code_dtype(bits: int, signed: bool) -> torch.dtype:
    if bits <= 8:
        return torch.int8 if signed else torch.uint8
    return torch.int16 if bits <= 16 and signed else torch.int32 if bits <= 31 else torch.int64


def quantize(
    x: torch.Tensor,
    bits: int,
    *,
    scale: torch.Tensor | None = None,
    axis: Axis = None,
    symmetric: bool = True,
    grid: str = "integer",
    signed: bool = True,
    bounds: tuple[Bound, Bound] | None = None,
    eps: float = 1e-12,
    dtype: torch.dtype | None = None,
) -> Quantized:
    """Integer codes of :func:`fake_quantize` (no gradient): ``x ~ (codes - zero_point) * scale``.

    Symmetric ``"integer"`` codes are ``clamp(round(x/s), -q, q)`` (``signed``, zero point 0)
    or that plus ``2^(b-1)`` (unsigned, zero point ``2^(b-1)``); ``"balanced"`` codes are
    ``clamp(floor(x/s) + 2^(b-1), 0, 2^b - 1)`` with zero point ``2^(b-1) - 1/2``; asymmetric
    codes are ``0..2^b - 1`` with scale = the step and zero point ``-lo / step`` (there the
    round trip matches :func:`fake_quantize` up to float rounding).  ``dtype`` defaults to the
    smallest integer type holding the codes (``int8``/``uint8`` up to 8 bits).

    >>> q = quantize(torch.tensor([[1.0, -0.5, 0.25]]), 8, axis=0)
    >>> q.codes.tolist(), q.zero_point, bool(torch.equal(q.dequantize(), q.codes * q.scale))
    ([[127, -64, 32]], 0, True)
    """
    _check_options(symmetric, grid, scale, bounds, signed)
    if isinstance(bits, int) and not isinstance(bits, bool) and bits > MAX_CODE_BITS:
        raise ValueError(
            f"integer codes take at most {MAX_CODE_BITS} bits, got {bits}: use fake_quantize "
            f"for wider grids"
        )
    x = x.detach()
    if not symmetric:
        t, step, steps, lo = _asymmetric(x, bits, axis, bounds, eps)
        codes = torch.clamp(torch.round(t), 0, steps)
        step = torch.as_tensor(step, dtype=x.dtype, device=x.device)
        return Quantized(codes.to(dtype or _code_dtype(bits, False)), step, -lo / step)
    top = grid_max(bits, grid)
    s = uniform_scale(x, bits, axis=axis, grid=grid, eps=eps) if scale is None else scale.detach()
    if grid == "balanced":
        codes = (torch.floor(x / s) + 2 ** (bits - 1)).clamp(0, 2**bits - 1)
        return Quantized(codes.to(dtype or _code_dtype(bits, False)), s, top)
    codes = torch.clamp(torch.round(x / s), -top, top)
    if signed:
        return Quantized(codes.to(dtype or _code_dtype(bits, True)), s, 0)
    offset = 2 ** (bits - 1)
    return Quantized((codes + offset).to(dtype or _code_dtype(bits, False)), s, offset)


def dequantize(
    codes: torch.Tensor, scale: torch.Tensor, zero_point: float | torch.Tensor = 0
) -> torch.Tensor:
    """``(codes - zero_point) * scale`` at the scale's dtype (no subtraction when it is 0).

    Parameters
    ----------
    codes : integer Tensor (...)
    scale : Tensor broadcasting to ``codes`` (e.g. ``(..., 1)`` per vector)
    zero_point : float or Tensor broadcasting to ``codes``

    Returns
    -------
    Tensor, ``codes``' shape, ``scale``'s dtype
    """
    if codes.is_floating_point():
        raise ValueError(f"codes must be an integer tensor, got {codes.dtype}")
    values = codes.to(scale.dtype)
    if not (isinstance(zero_point, (int, float)) and zero_point == 0):
        values = values - zero_point
    return values * scale
