"""Spike functions with surrogate gradients.

Garg, Chowdhury, Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021 (arXiv 2010.01795).  A spiking neuron fires
when its normalised membrane ``z = U / V_th - 1`` is positive.  The forward pass is the
Heaviside step ``H(z) = 1 if z > 0 else 0`` (strict, as in the official DCT-SNN code and in
snnTorch; SpikingJelly fires at ``z >= 0``: the two differ only on the measure-zero set
``z == 0``).  Its derivative is zero almost everywhere, so the backward pass substitutes a
smooth *surrogate* ``g(z)``:

- ``"linear"`` (DCT-SNN's default, Bellec et al. 2018): ``g(z) = scale * max(0, 1 - |z|)``,
  ``scale = 0.3``;
- ``"fast_sigmoid"`` (SuperSpike, snnTorch's ``fast_sigmoid``): ``g(z) = 1 / (1 + k |z|)^2``,
  slope ``k = 25``;
- ``"arctan"`` (SpikingJelly's ``ATan``, snnTorch's ``atan``):
  ``g(z) = (alpha / 2) / (1 + (pi / 2 * alpha * z)^2)``, ``alpha = 2``.

Each surrogate is a pure derivative function (``*_grad``, used by the fused multi-step LIF
kernel in :mod:`netprism.nn.neurons`) wrapped by a ``torch.autograd.Function``.  They are
listed by name in :data:`SURROGATES`; :func:`spike` is the front door.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "SURROGATES",
    "Surrogate",
    "arctan_grad",
    "arctan_grad_",
    "fast_sigmoid_grad",
    "fast_sigmoid_grad_",
    "linear_grad",
    "linear_grad_",
    "resolve_surrogate",
    "spike",
]


# --------------------------------------------------------------------------- derivatives
# Each ``*_grad_`` overwrites its scratch argument with g(z) (the fused multi-step LIF reuses
# one buffer per step); ``*_grad`` is the allocating version with the same arithmetic.


def linear_grad_(z: torch.Tensor, scale: float = 0.3) -> torch.Tensor:
    """In place: ``z <- scale * max(0, 1 - |z|)``, computed as ``max(0, scale - scale |z|)``."""
    return z.abs_().mul_(-scale).add_(scale).clamp_min_(0.0)


def fast_sigmoid_grad_(z: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    """In place: ``z <- 1 / (1 + slope |z|)^2``."""
    return z.abs_().mul_(slope).add_(1.0).square_().reciprocal_()


def arctan_grad_(z: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """In place: ``z <- (alpha / 2) / (1 + (pi / 2 * alpha * z)^2)``."""
    return z.mul_(math.pi / 2 * alpha).square_().add_(1.0).reciprocal_().mul_(alpha / 2)


def linear_grad(z: torch.Tensor, scale: float = 0.3) -> torch.Tensor:
    """Piecewise-linear surrogate ``scale * max(0, 1 - |z|)`` (same shape as ``z``)."""
    return linear_grad_(z.clone(), scale)


def fast_sigmoid_grad(z: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    """Fast-sigmoid surrogate ``1 / (1 + slope |z|)^2`` (same shape as ``z``)."""
    return fast_sigmoid_grad_(z.clone(), slope)


def arctan_grad(z: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Arctan surrogate ``(alpha / 2) / (1 + (pi / 2 * alpha * z)^2)`` (same shape as ``z``)."""
    return arctan_grad_(z.clone(), alpha)


# --------------------------------------------------------------------------- autograd wrappers


def _heaviside(z: torch.Tensor) -> torch.Tensor:
    return (z > 0).to(z.dtype)


class LinearSpike(torch.autograd.Function):
    """``H(z)`` forward, ``scale * max(0, 1 - |z|)`` backward."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.param = scale
        return _heaviside(z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        return grad * linear_grad(z, ctx.param), None


class FastSigmoidSpike(torch.autograd.Function):
    """``H(z)`` forward, ``1 / (1 + slope |z|)^2`` backward."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.param = slope
        return _heaviside(z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        return grad * fast_sigmoid_grad(z, ctx.param), None


class ArctanSpike(torch.autograd.Function):
    """``H(z)`` forward, ``(alpha / 2) / (1 + (pi / 2 * alpha * z)^2)`` backward."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.param = alpha
        return _heaviside(z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        return grad * arctan_grad(z, ctx.param), None


@dataclass(frozen=True)
class Surrogate:
    """One registered surrogate: its autograd function, its derivative and its parameter.

    Attributes
    ----------
    function : type of torch.autograd.Function
        ``function.apply(z, param)`` spikes with this surrogate.
    grad : callable
        ``grad(z, param) -> g(z)``, the surrogate derivative as a free function.
    grad_ : callable
        The same, in place (``z`` is overwritten with ``g(z)`` and returned).
    param : str
        Name of the single shape parameter (``scale``, ``slope`` or ``alpha``).
    default : float
        Its default value.
    """

    function: type[torch.autograd.Function]
    grad: Callable[[torch.Tensor, float], torch.Tensor]
    grad_: Callable[[torch.Tensor, float], torch.Tensor]
    param: str
    default: float
    doc: str = field(default="", compare=False)


SURROGATES: dict[str, Surrogate] = {
    "linear": Surrogate(
        LinearSpike, linear_grad, linear_grad_, "scale", 0.3, "0.3 * max(0, 1 - |z|)"
    ),
    "fast_sigmoid": Surrogate(
        FastSigmoidSpike,
        fast_sigmoid_grad,
        fast_sigmoid_grad_,
        "slope",
        25.0,
        "1 / (1 + 25 |z|)^2",
    ),
    "arctan": Surrogate(ArctanSpike, arctan_grad, arctan_grad_, "alpha", 2.0, "1 / (1 + (pi z)^2)"),
}


def resolve_surrogate(name: str, **kw: float) -> tuple[Surrogate, float]:
    """Look up a surrogate by name and return it with its parameter value.

    Parameters
    ----------
    name : one of ``SURROGATES`` (``"linear"``, ``"fast_sigmoid"``, ``"arctan"``).
    **kw : at most the surrogate's own parameter (``scale=``, ``slope=`` or ``alpha=``).

    Returns
    -------
    (Surrogate, float) : the registry entry and the parameter (``kw`` value or the default).

    Raises
    ------
    ValueError
        For an unknown name, an unknown keyword, or a non-finite / non-positive parameter.
    """
    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, got {name!r}")
    sur = SURROGATES[name]
    extra = set(kw) - {sur.param}
    if extra:
        raise ValueError(
            f"surrogate {name!r} takes only the keyword {sur.param!r}, got {sorted(extra)}"
        )
    value = kw.get(sur.param, sur.default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{sur.param} must be a float, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{sur.param} must be a finite float > 0, got {value!r}")
    return sur, float(value)


def spike(z: torch.Tensor, surrogate: str = "linear", **kw: float) -> torch.Tensor:
    """Heaviside spike of the normalised membrane with a surrogate gradient.

    Parameters
    ----------
    z : Tensor (any shape), floating point
        Normalised membrane ``U / V_th - 1``.
    surrogate : {"linear", "fast_sigmoid", "arctan"}
        Which surrogate derivative the backward pass uses (see the module docstring).
    **kw : float
        The surrogate's parameter: ``scale`` (linear, 0.3), ``slope`` (fast_sigmoid, 25) or
        ``alpha`` (arctan, 2).

    Returns
    -------
    Tensor, same shape and dtype as ``z``
        ``1.0`` where ``z > 0``, else ``0.0``; ``d spike / d z`` is the surrogate ``g(z)``.

    Examples
    --------
    >>> z = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    >>> s = spike(z)
    >>> s
    tensor([0., 0., 1.], grad_fn=<LinearSpikeBackward>)
    >>> s.sum().backward()
    >>> z.grad
    tensor([0.1500, 0.3000, 0.1500])
    >>> spike(torch.zeros(1), "sigmoid")
    Traceback (most recent call last):
    ...
    ValueError: surrogate must be one of ['arctan', 'fast_sigmoid', 'linear'], got 'sigmoid'
    """
    sur, value = resolve_surrogate(surrogate, **kw)
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise ValueError(f"z must be a floating-point tensor, got {type(z).__name__}")
    out: torch.Tensor = sur.function.apply(z, value)
    return out
