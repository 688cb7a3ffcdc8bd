"""Flat parameter vectors and the gradient-matching kernel shared by TOFU and the attacks.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494).  TOFU's encoder and the Inverting
Gradients attack (Geiping et al. 2020) minimise the same loss, ``1 - cos(g_syn, g_target)``;
DLG (Zhu et al. 2019) minimises ``||g_syn - g_target||^2``.  Both live here once.

A model's weights travel as one flat float32 vector ``(P,)`` in ``model.parameters()``
order, so an update is ``W_local - W_global`` of shape ``(P,)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

MATCH_LOSSES = ("cosine", "l2")


def flat_params(model: nn.Module) -> torch.Tensor:
    """A detached copy of ``model``'s parameters as one vector ``(P,)``.

    Examples
    --------
    >>> flat_params(nn.Linear(3, 2)).shape
    torch.Size([8])
    """
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def load_flat_params(model: nn.Module, flat: torch.Tensor) -> nn.Module:
    """Copy the vector ``flat`` ``(P,)`` into ``model``'s parameters in place; return it."""
    check_flat(model, flat)
    # vector_to_parameters makes the parameters views of its input: hand it a private copy.
    torch.nn.utils.vector_to_parameters(flat.detach().to(torch.float32).clone(), model.parameters())
    return model


def check_flat(model: nn.Module, flat: torch.Tensor, name: str = "update") -> None:
    """Raise ``ValueError`` unless ``flat`` is a 1-D vector with one entry per parameter."""
    n = sum(p.numel() for p in model.parameters())
    if not isinstance(flat, torch.Tensor) or flat.shape != (n,):
        shape = tuple(flat.shape) if isinstance(flat, torch.Tensor) else type(flat).__name__
        raise ValueError(f"{name} must have shape ({n},) (one entry per parameter), got {shape}")


def params_from_flat(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split ``flat`` ``(P,)`` into ``{name: tensor}`` shaped like ``model``'s parameters.

    The tensors are views of ``flat``, so gradients flow back to it.
    """
    check_flat(model, flat, "weights")
    out: dict[str, torch.Tensor] = {}
    start = 0
    for name, p in model.named_parameters():
        out[name] = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def weighted_gradient(
    model: nn.Module,
    weights: torch.Tensor,
    x: torch.Tensor,
    targets: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    create_graph: bool = False,
) -> torch.Tensor:
    """``sum_i alpha_i * grad_W CE(f_W(x_i), targets_i)`` at the flat weights ``weights``.

    Parameters
    ----------
    model : nn.Module
        The architecture; its own parameter values are not used.
    weights : Tensor (P,)
        The weights ``W`` at which the gradient is taken.
    x : Tensor (N, *input_shape)
    targets : Tensor (N, K) of probabilities (soft labels) or (N,) of class indices
    alpha : Tensor (N,), optional
        Per-sample weights; ``None`` gives the batch mean (``alpha_i = 1 / N``), which is the
        gradient one SGD step on that batch uses.
    create_graph : bool
        Keep the graph so the result can be differentiated again (for matching).

    Returns
    -------
    Tensor (P,)
        The weighted gradient as one flat vector.

    Examples
    --------
    >>> m = nn.Linear(2, 3)
    >>> g = weighted_gradient(m, flat_params(m), torch.ones(4, 2), torch.tensor([0, 1, 2, 0]))
    >>> g.shape
    torch.Size([9])
    """
    n = x.shape[0]
    if alpha is None:
        alpha = torch.full((n,), 1.0 / n, dtype=x.dtype)
    if alpha.shape != (n,) or targets.shape[0] != n:
        raise ValueError(
            f"alpha must be ({n},) and targets must have {n} rows, "
            f"got {tuple(alpha.shape)} and {tuple(targets.shape)}"
        )
    params = params_from_flat(model, weights)
    # Differentiate w.r.t. the view tensors, not the flat vector, so ``weights`` need not
    # require grad; the result is concatenated back into one (P,) vector.
    leaves = {
        k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in params.items()
    }
    logits = functional_call(model, leaves, (x,))  # (N, K)
    losses = F.cross_entropy(logits, targets, reduction="none")  # (N,)
    loss = (alpha * losses).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=create_graph)
    return torch.cat([g.reshape(-1) for g in grads])


def match_loss(g_syn: torch.Tensor, g_target: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Gradient-matching loss: ``1 - cos(g_syn, g_target)`` or ``||g_syn - g_target||^2``.

    Examples
    --------
    >>> float(match_loss(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])))
    0.0
    >>> float(match_loss(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]), "l2"))
    1.0
    """
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(g_syn, g_target, dim=0, eps=1e-12)
    if kind == "l2":
        return ((g_syn - g_target) ** 2).sum()
    raise ValueError(f"match loss must be one of {MATCH_LOSSES}, got {kind!r}")


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels of images ``(N, C, H, W)``.

    Examples
    --------
    >>> float(total_variation(torch.zeros(1, 1, 4, 4)))
    0.0
    """
    if x.dim() != 4:
        raise ValueError(f"total_variation needs images (N, C, H, W), got shape {tuple(x.shape)}")
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return dx + dy


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two flat vectors as a float.

    Examples
    --------
    >>> round(cosine(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])), 4)
    0.7071
    """
    return float(F.cosine_similarity(a.reshape(-1), b.reshape(-1), dim=0, eps=1e-12))
