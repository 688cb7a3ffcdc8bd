"""Adversarial attacks in [0, 1] input space and BPDA for non-differentiable preprocessing.

Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble Design" (IEEE TAI
2023, arXiv 2008.01524).  Every attack works on images in ``[0, 1]`` and expects any
normalisation to live inside the model (as in the official code and torchattacks), so the
``eps``-ball is in pixel units and adversarial images are always valid images.

- :func:`fgsm`: one signed-gradient step of size ``eps`` (Goodfellow et al. 2015).
- :func:`pgd`: projected gradient descent, L-inf (random start in the ball, signed steps) or L2
  (normalised gradient steps, projection onto the L2 ball) (Madry et al. 2018).  Its step rule
  is torchattacks' ``PGD`` / ``PGDL2`` operation for operation.
- :func:`mi_fgsm`: momentum iterative FGSM (Dong et al. 2018).
- :func:`bpda`: Backward Pass Differentiable Approximation (Athalye et al. 2018): run a
  non-differentiable ``forward`` but back-propagate through a smooth ``surrogate``.
  :func:`quantize_input` (identity backward) and :func:`halftone` (sigmoid surrogate) are the
  TREND input transforms built on it.

Losses are summed over the batch (so one sample's gradient does not depend on the batch size;
the signed steps equal those of a mean-reduced loss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("linf", "l2")
HALFTONE_KERNEL = ((-1.0, -2.0, -1.0), (-2.0, 16.0, -2.0), (-1.0, -2.0, -1.0))


def check_attack_inputs(x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    """Raise ``ValueError`` unless ``x`` (N, ...) is finite in [0, 1], ``y`` is (N,) and
    ``eps >= 0``."""
    if not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a float tensor (N, ...), got {x.dtype} {tuple(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must be (N,) = ({len(x)},) class indices, got {tuple(y.shape)}")
    if not torch.isfinite(x).all() or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ValueError("x must be finite and lie in [0, 1] (normalise inside the model)")
    if not (isinstance(eps, (int, float)) and eps >= 0.0):
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")


def input_gradient(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_scale: float = 1.0,
) -> torch.Tensor:
    """Gradient of the summed cross-entropy ``loss_scale * CE(model(x), y)`` w.r.t. ``x``.

    Parameters
    ----------
    model : callable mapping (N, ...) to logits (N, K)
    x : Tensor (N, ...)
    y : LongTensor (N,)
    loss_scale : float
        Multiplies the loss (and so the gradient); used to demonstrate gradient domination.

    Returns
    -------
    Tensor (N, ...), detached.

    Examples
    --------
    >>> m = nn.Linear(3, 2)
    >>> input_gradient(m, torch.rand(4, 3), torch.tensor([0, 1, 0, 1])).shape
    torch.Size([4, 3])
    """
    xg = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(xg), y, reduction="sum")
    if loss_scale != 1.0:  # skip the extra op in the common case (PGD's inner loop)
        loss = loss_scale * loss
    return torch.autograd.grad(loss, xg)[0].detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Fast Gradient Sign Method: ``clip(x + eps * sign(grad), 0, 1)``.

    Parameters
    ----------
    model : nn.Module mapping (N, ...) in [0, 1] to logits (N, K)
    x : Tensor (N, ...) in [0, 1]
    y : LongTensor (N,)
    eps : float, L-inf radius

    Returns
    -------
    Tensor (N, ...): adversarial images, ``|x_adv - x| <= eps`` and in [0, 1].

    Examples
    --------
    >>> x = torch.rand(4, 3)
    >>> adv = fgsm(nn.Linear(3, 2), x, torch.tensor([0, 1, 0, 1]), eps=0.1)
    >>> bool((adv - x).abs().max() <= 0.1 + 1e-7)
    True
    """
    check_attack_inputs(x, y, eps)
    g = input_gradient(model, x, y)
    return (x + eps * g.sign()).clamp(0.0, 1.0).detach()


def random_init(x: torch.Tensor, eps: float, norm: str, seed: int | None) -> torch.Tensor:
    """A random point of the ``eps``-ball, clipped to [0, 1]: L-inf per-pixel uniform; L2 a
    random direction at a radius uniform in [0, eps] (torchattacks' ``PGDL2`` recipe, not
    volume-uniform).  ``seed=None`` uses torch's global generator, as torchattacks does."""
    gen = None if seed is None else torch.Generator(device=x.device).manual_seed(seed)
    if norm == "linf":
        noise = torch.empty_like(x).uniform_(-eps, eps, generator=gen)
        return (x + noise).clamp(0.0, 1.0)
    n = len(x)
    delta = torch.empty_like(x).normal_(generator=gen)
    flat = delta.reshape(n, -1)  # (N, D)
    r = torch.empty(n, device=x.device).uniform_(0, 1, generator=gen)
    delta = (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12) * (r * eps)[:, None]).view_as(x)
    return (x + delta).clamp(0.0, 1.0)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """Project ``x_adv`` onto the ``eps``-ball around ``x`` (L-inf or L2), then onto [0, 1].

    Examples
    --------
    >>> project(torch.tensor([[0.9, 0.0]]), torch.tensor([[0.5, 0.5]]), 0.1).tolist()
    [[0.6000000238418579, 0.4000000059604645]]
    """
    if norm == "linf":
        delta = (x_adv - x).clamp_(-eps, eps)
    else:
        delta = x_adv - x
        norms = delta.reshape(len(x), -1).norm(dim=1)  # (N,)
        factor = (eps / norms.clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * factor.view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp_(0.0, 1.0)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 40,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    seed: int | None = 0,
) -> torch.Tensor:
    """Projected Gradient Descent (untargeted), L-inf or L2.

    Parameters
    ----------
    model : nn.Module mapping (N, ...) in [0, 1] to logits (N, K); used as given (call
        ``model.eval()`` first for a fixed network)
    x : Tensor (N, ...) in [0, 1]
    y : LongTensor (N,)
    eps : float
        Radius of the ball (pixel units; L2 over a whole sample for ``norm="l2"``).
    steps : int
        Iterations (TREND: 40).
    step_size : float, optional
        Step per iteration; default ``eps / 4`` (L-inf) or ``eps / 5`` (L2).
    norm : {"linf", "l2"}
    random_start : bool
        Start from a uniformly random point of the ball.
    seed : int or None
        Seed of the random start; ``None`` draws from torch's global generator (the behaviour
        of torchattacks).

    Returns
    -------
    Tensor (N, ...): adversarial images inside the ball and in [0, 1].

    Examples
    --------
    >>> x = torch.rand(8, 5)
    >>> adv = pgd(nn.Linear(5, 3), x, torch.zeros(8, dtype=torch.long), eps=0.05, steps=3)
    >>> bool((adv - x).abs().max() <= 0.05 + 1e-7 and adv.min() >= 0 and adv.max() <= 1)
    True
    """
    check_attack_inputs(x, y, eps)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    alpha = step_size if step_size is not None else eps / (4.0 if norm == "linf" else 5.0)
    x = x.detach()
    adv = random_init(x, eps, norm, seed) if random_start else x.clone()
    view = (-1, *([1] * (x.ndim - 1)))
    for _ in range(steps):
        g = input_gradient(model, adv, y)
        if norm == "linf":
            adv = adv + alpha * g.sign_()
        else:
            g_norm = g.reshape(len(x), -1).norm(dim=1) + 1e-10  # (N,)
            adv = adv + alpha * g / g_norm.view(view)
        adv = project(adv, x, eps, norm)
    return adv.detach()


def mi_fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    decay: float = 1.0,
) -> torch.Tensor:
    """Momentum Iterative FGSM (L-inf): step ``eps / steps`` along the sign of the momentum
    ``g <- decay * g + grad / mean|grad|``.

    Parameters
    ----------
    model : nn.Module; x : Tensor (N, ...) in [0, 1]; y : LongTensor (N,)
    eps : float; steps : int; decay : float (momentum factor ``mu``)

    Returns
    -------
    Tensor (N, ...)

    Examples
    --------
    >>> x = torch.rand(4, 3)
    >>> adv = mi_fgsm(nn.Linear(3, 2), x, torch.tensor([0, 1, 0, 1]), eps=0.1, steps=4)
    >>> bool((adv - x).abs().max() <= 0.1 + 1e-7)
    True
    """
    check_attack_inputs(x, y, eps)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    x = x.detach()
    alpha = eps / steps
    adv = x.clone()
    momentum = torch.zeros_like(x)
    dims = tuple(range(1, x.ndim))
    for _ in range(steps):
        g = input_gradient(model, adv, y)
        g = g / g.abs().mean(dim=dims, keepdim=True).clamp_min(1e-12)
        momentum = decay * momentum + g
        adv = project(adv + alpha * momentum.sign(), x, eps, "linf")
    return adv.detach()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Arg-max predictions (N,) of ``model`` on ``x`` (N, ...), in batches."""
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def attack_success_rate(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> float:
    """Fraction of the samples ``model`` classifies correctly when clean that ``x_adv`` fools.

    Returns ``nan`` when no sample is correct.
    """
    clean_ok = predict(model, x) == y
    fooled = predict(model, x_adv) != y
    n = int(clean_ok.sum())
    return float((clean_ok & fooled).sum()) / n if n else float("nan")


# --------------------------------------------------------------------------- BPDA


class _BPDA(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        forward: Callable[[torch.Tensor], torch.Tensor],
        surrogate: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return forward(x.detach())

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            xs = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(ctx.surrogate(xs), xs, grad_out)
        return grad, None, None


def bpda(
    x: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    surrogate: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``forward(x)`` whose backward pass is that of the differentiable ``surrogate(x)``.

    ``surrogate=None`` is the identity (the straight-through BPDA used for quantizers).  The
    surrogate must return a tensor of ``forward(x)``'s shape.

    Examples
    --------
    >>> x = torch.tensor([0.2, 0.7], requires_grad=True)
    >>> bpda(x, torch.round).sum().backward()
    >>> x.grad.tolist()
    [1.0, 1.0]
    """
    return _BPDA.apply(x, forward, surrogate if surrogate is not None else (lambda t: t))


def quantize_input(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Uniform binning of ``x`` in [0, 1] into ``2**bits`` bins, mid-bin reconstruction,
    identity backward (BPDA).

    Bins are fixed on [0, 1] (the official code bins on each batch's min / max, which makes a
    sample's quantisation depend on its batch; pixel images span [0, 1] anyway).

    Examples
    --------
    >>> quantize_input(torch.tensor([0.1, 0.49, 0.51, 1.0]), 1).tolist()
    [0.25, 0.25, 0.75, 0.75]
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"input quantisation bits must be an int in 1..8, got {bits!r}")
    levels = 2**bits

    def binning(t: torch.Tensor) -> torch.Tensor:
        return ((t * levels).floor().clamp(0, levels - 1) + 0.5) / levels

    return bpda(x, binning)


def _halftone_response(x: torch.Tensor) -> torch.Tensor:
    """The HT kernel applied depthwise to the normalised image ``2x - 1`` (N, C, H, W)."""
    c = x.shape[1]
    kernel = torch.tensor(HALFTONE_KERNEL, dtype=x.dtype, device=x.device)
    weight = kernel.expand(c, 1, 3, 3)  # (C, 1, 3, 3): one filter per channel
    return F.conv2d(2.0 * x - 1.0, weight, padding=1, groups=c)


def halftone(x: torch.Tensor, *, temperature: float = 4.0) -> torch.Tensor:
    """TREND's halftoning: the 3x3 kernel ``[[-1,-2,-1],[-2,16,-2],[-1,-2,-1]]`` on the
    normalised image, then a step to a binary {0, 1} image.  Backward (BPDA): the sigmoid
    ``sigmoid(response / temperature)``.

    Parameters
    ----------
    x : Tensor (N, C, H, W) in [0, 1]
    temperature : float
        Width of the sigmoid surrogate of the step.

    Examples
    --------
    >>> out = halftone(torch.rand(2, 1, 8, 8))
    >>> sorted(set(out.flatten().tolist())) <= [0.0, 1.0]
    True
    """
    if x.ndim != 4:
        raise ValueError(f"halftone expects images (N, C, H, W), got shape {tuple(x.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return bpda(
        x,
        lambda t: (_halftone_response(t) > 0).to(t.dtype),
        lambda t: torch.sigmoid(_halftone_response(t) / temperature),
    )
