"""Gradient-leakage attacks used to test TOFU's privacy, and reconstruction quality.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494) evaluate privacy by inverting real and
TOFU-decoded updates.  Implemented here, on the gradient-matching kernel TOFU's encoder uses:

- Inverting Gradients (Geiping et al., NeurIPS 2020): ``1 - cos`` + total variation, Adam on
  signed gradients, inputs boxed to [0, 1];
- DLG (Zhu et al., NeurIPS 2019): ``||g - g*||^2`` with L-BFGS over a dummy input and label;
- the analytic inversion of a fully connected first layer with bias (``x = dL/dW1[j] /
  dL/db1[j]``; Phong et al. 2017), the deterministic positive control.

Quality is the MSE / PSNR of each reconstruction to its best-matching true image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from netprism.federated.gradients import match_loss, total_variation, weighted_gradient


def _dummies(
    n: int, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *input_shape), generator=gen).requires_grad_(True)
    y = torch.randn((n, num_classes), generator=gen).requires_grad_(True)
    return x, y


def _dummy_gradient(
    model: nn.Module, weights: torch.Tensor, x: torch.Tensor, label_logits: torch.Tensor
) -> torch.Tensor:
    # The attacker assumes one SGD step on a batch: the mean gradient of its B samples.
    soft = torch.softmax(label_logits, dim=1)  # (B, K)
    return weighted_gradient(model, weights, x, soft, None, create_graph=True)


def inverting_gradients(
    model: nn.Module,
    weights: torch.Tensor,
    target_grad: torch.Tensor,
    *,
    batch_size: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    steps: int = 500,
    lr: float = 0.1,
    tv_weight: float = 1e-2,
    seed: int = 0,
) -> torch.Tensor:
    """Inverting Gradients: match ``target_grad`` ``(P,)`` by cosine + TV with signed Adam.

    Parameters
    ----------
    model : nn.Module
        The architecture; it is evaluated at ``weights`` ``(P,)`` (what the server sent).
    target_grad : Tensor (P,)
        The gradient the attacker inverts (``-update / lr`` for one local SGD step).
    batch_size : int
        ``B``, the number of images to reconstruct (assumed known, as in the papers).

    Returns
    -------
    Tensor (B, *input_shape)
        Reconstructed inputs in [0, 1].
    """
    x, y = _dummies(batch_size, input_shape, num_classes, seed)
    opt = torch.optim.Adam([x, y], lr=lr)
    target = target_grad.detach()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = match_loss(_dummy_gradient(model, weights, x, y), target, "cosine")
        if tv_weight > 0 and x.dim() == 4:
            loss = loss + tv_weight * total_variation(x)
        loss.backward()
        assert x.grad is not None
        x.grad.sign_()  # IG steps along the sign of the gradient
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    return x.detach()


def dlg(
    model: nn.Module,
    weights: torch.Tensor,
    target_grad: torch.Tensor,
    *,
    batch_size: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    steps: int = 30,
    lr: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """DLG: match ``target_grad`` ``(P,)`` in L2 with L-BFGS over a dummy input and label.

    ``steps`` L-BFGS outer steps of at most 20 evaluations each.  Returns ``(B,
    *input_shape)`` clamped to [0, 1] (DLG itself is unconstrained).
    """
    x, y = _dummies(batch_size, input_shape, num_classes, seed)
    opt = torch.optim.LBFGS([x, y], lr=lr, max_iter=20, history_size=50)
    target = target_grad.detach()

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = match_loss(_dummy_gradient(model, weights, x, y), target, "l2")
        loss.backward()
        return loss

    for _ in range(steps):
        loss = opt.step(closure)
        if not math.isfinite(float(loss.detach())):
            break  # L-BFGS diverged; keep the last finite-step inputs
    return x.detach().nan_to_num(0.5).clamp(0.0, 1.0)


def analytic_fc_inversion(
    grad_weight: torch.Tensor, grad_bias: torch.Tensor, *, eps: float = 1e-8
) -> torch.Tensor:
    """Inputs of a fully connected first layer from its gradients: ``dW[j] / db[j]``.

    For one sample, ``dL/dW[j] = dL/db[j] * x`` for every unit ``j``, so any unit with a
    non-zero bias gradient returns ``x`` exactly.  For a batch each row is a mixture of the
    samples that activate unit ``j`` (a single sample when only it does).

    Parameters
    ----------
    grad_weight : Tensor (H, D)
    grad_bias : Tensor (H,)

    Returns
    -------
    Tensor (H', D)
        One candidate input per unit with ``|db[j]| > eps``, largest ``|db[j]|`` first.

    Examples
    --------
    >>> x = torch.tensor([[0.2, 0.7]])
    >>> lin = nn.Linear(2, 3)
    >>> lin(x).pow(2).sum().backward()
    >>> torch.allclose(analytic_fc_inversion(lin.weight.grad, lin.bias.grad)[0], x[0])
    True
    """
    if grad_weight.dim() != 2 or grad_bias.shape != (grad_weight.shape[0],):
        raise ValueError(
            "need grad_weight (H, D) and grad_bias (H,), got "
            f"{tuple(grad_weight.shape)} and {tuple(grad_bias.shape)}"
        )
    order = grad_bias.abs().argsort(descending=True)
    order = order[grad_bias[order].abs() > eps]
    return grad_weight[order] / grad_bias[order, None]  # (H', D)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared error of two equally shaped tensors."""
    return float(((a.float() - b.float()) ** 2).mean())


def psnr_from_mse(value: float, data_range: float = 1.0) -> float:
    """``10 log10(range^2 / mse)`` in dB (``inf`` for a perfect match).

    Examples
    --------
    >>> psnr_from_mse(0.01)
    20.0
    """
    return math.inf if value <= 0 else 10.0 * math.log10(data_range**2 / value)


def best_match_mse(recon: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """For each reconstruction ``(R, ...)``, the MSE to its closest true image ``(B, ...)``.

    Examples
    --------
    >>> best_match_mse(torch.zeros(2, 3), torch.stack([torch.ones(3), torch.zeros(3)]))
    tensor([0., 0.])
    """
    r = recon.reshape(recon.shape[0], -1).float()  # (R, D)
    t = truth.reshape(truth.shape[0], -1).float()  # (B, D)
    return torch.cdist(r, t).pow(2).div(r.shape[1]).min(dim=1).values  # (R,)


def reconstruction_quality(recon: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Mean best-match MSE of ``recon`` to ``truth`` and the PSNR of that mean (data in [0, 1])."""
    m = float(best_match_mse(recon, truth).mean())
    return {"mse": m, "psnr": psnr_from_mse(m)}


def per_truth_best(candidates: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """For each true image, the best MSE among ``candidates``; their mean and its PSNR.

    Suits the analytic inversion, whose many candidate rows include a few clean samples.
    """
    m = float(best_match_mse(truth, candidates.clamp(0.0, 1.0)).mean())
    return {"mse": m, "psnr": psnr_from_mse(m)}
