"""Batched per-sample quantities: losses, logit margins, input gradients, parameter-gradient
norms.

Every function runs the model in eval mode and uses sum reduction, so a sample's value is the
same whether it is processed alone or inside a batch (for models whose eval-mode forward treats
samples independently: BatchNorm with running statistics, no batch-level layers).  Used by the
memorization scores (Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss
Function Around Samples", ICML 2024, arXiv 2307.05831) and its peers (loss, margin/AUM,
gradient norms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from netprism.core.outputs import OutputFn, model_logits
from netprism.core.validation import check_finite


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore every submodule's mode after
    (a frozen BatchNorm inside a training model stays in eval mode)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` (N, ...) is finite and ``y`` (N,) holds class indices."""
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"x must have a batch dimension with N >= 1, got shape {tuple(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool or (len(y) and int(y.min()) < 0):
        raise ValueError(f"y must hold integer class indices >= 0, got dtype {y.dtype}")
    check_finite(x, "x")


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _map_batches(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
) -> torch.Tensor:
    check_batch(x, y)
    device = next(iter(model.parameters()), torch.empty(0)).device
    outs = []
    with eval_mode(model):
        for sl in _batches(len(x), batch_size):
            outs.append(fn(x[sl].to(device), y[sl].to(device)).cpu())
    return torch.cat(outs)


@torch.no_grad()
def predictions(
    model: nn.Module, x: torch.Tensor | Iterable[Any], *, batch_size: int = 512
) -> torch.Tensor:
    """The class ``model`` predicts for each input (argmax of its logits), in eval mode.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, *input_shape)`` to logits ``(B, K)`` (or an output :func:`~netprism.core.
        outputs.as_logits` reads).
    x : Tensor (N, *input_shape), or an iterable of input batches
        Batches (e.g. streamed from disk) are predicted in the order they come.

    Returns
    -------
    LongTensor (N,) on the CPU

    Examples
    --------
    >>> m = torch.nn.Linear(2, 2, bias=False)
    >>> _ = m.weight.data.copy_(torch.eye(2))
    >>> predictions(m, torch.tensor([[1.0, 0.0], [0.0, 2.0]])).tolist()
    [0, 1]
    """
    device = next(iter(model.parameters()), torch.empty(0)).device
    batches = (x[sl] for sl in _batches(len(x), batch_size)) if isinstance(x, torch.Tensor) else x
    with eval_mode(model):
        outs = [model_logits(model, xb.to(device)).argmax(dim=1).cpu() for xb in batches]
    return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.long)


def per_sample_losses(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512
) -> torch.Tensor:
    """Cross-entropy of each sample.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, *input_shape)`` to logits ``(B, K)``.
    x : Tensor (N, *input_shape)
    y : LongTensor (N,)

    Returns
    -------
    Tensor (N,)

    Examples
    --------
    >>> m = torch.nn.Linear(3, 2)
    >>> per_sample_losses(m, torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])).shape
    torch.Size([4])
    """

    @torch.no_grad()
    def fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(xb), yb, reduction="none")

    return _map_batches(model, x, y, fn, batch_size)


def logit_margins(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512
) -> torch.Tensor:
    """Assigned-class logit minus the largest other logit (the margin behind AUM).

    Returns
    -------
    Tensor (N,)
        Positive where the sample is classified as its label.

    Examples
    --------
    >>> m = torch.nn.Linear(2, 2, bias=False)
    >>> _ = m.weight.data.copy_(torch.eye(2))
    >>> logit_margins(m, torch.tensor([[2.0, 0.5]]), torch.tensor([0]))
    tensor([1.5000])
    """

    @torch.no_grad()
    def fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return margins_from_logits(model(xb), yb)

    return _map_batches(model, x, y, fn, batch_size)


def margins_from_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Margins from logits ``(N, K)`` and labels ``(N,)``: ``z_y - max_{k != y} z_k``."""
    assigned = logits.gather(1, y.unsqueeze(1)).squeeze(1)  # (N,)
    others = logits.scatter(1, y.unsqueeze(1), float("-inf"))  # (N, K), own class masked
    return assigned - others.max(dim=1).values


def input_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
) -> torch.Tensor:
    """Gradient of each sample's loss with respect to its own input.

    With sum reduction, the gradient of the summed loss with respect to the batch is exactly
    the stack of per-sample input gradients.

    Returns
    -------
    Tensor (N, *input_shape)

    Examples
    --------
    >>> m = torch.nn.Linear(3, 2)
    >>> input_gradients(m, torch.randn(5, 3), torch.zeros(5, dtype=torch.long)).shape
    torch.Size([5, 3])
    """

    def fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return loss_input_grad(model, xb, yb)[0].detach()

    return _map_batches(model, x, y, fn, batch_size)


def loss_input_grad(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    create_graph: bool = False,
    output_fn: OutputFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d sum_i loss_i / d x, x_leaf)`` for one batch, model mode untouched.

    ``x_leaf`` is the detached copy of ``x`` that requires grad (needed for double backprop);
    ``output_fn`` maps the model's output to logits (default :func:`as_logits`).
    """
    x_leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model_logits(model, x_leaf, output_fn), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_leaf, create_graph=create_graph)
    return g, x_leaf


def per_sample_grad_norms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 128
) -> torch.Tensor:
    """L2 norm of each sample's loss gradient with respect to all trainable parameters.

    Uses ``torch.func.vmap(grad(...))`` over the batch, so it costs about one batched backward
    pass rather than a Python loop over samples.

    Returns
    -------
    Tensor (N,)

    Examples
    --------
    >>> m = torch.nn.Linear(3, 2)
    >>> per_sample_grad_norms(m, torch.randn(4, 3), torch.tensor([0, 1, 1, 0])).shape
    torch.Size([4])
    """
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def sample_loss(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))  # (1, K)
        return F.cross_entropy(logits, yi.unsqueeze(0), reduction="sum")

    grads_of = vmap(grad(sample_loss), in_dims=(None, 0, 0))

    def fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        grads = grads_of(params, xb, yb)  # name -> (B, *param_shape)
        sq = sum(g.flatten(1).pow(2).sum(dim=1) for g in grads.values())
        return torch.as_tensor(sq).sqrt()

    return _map_batches(model, x, y, fn, batch_size)
