"""TOFU: encode a weight update into the weighted gradient of a few proxy samples, and back.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates into
Gradients from Proxy Data" (arXiv 2201.08494, IEEE Access 2024). A client with update ``U_real``
``(P,)`` learns ``N`` proxy inputs ``x`` ``(N, *input_shape)``, soft-label logits ``y~`` ``(N,
K)`` and per-sample weights ``alpha`` ``(N,)`` so that ``U_syn = sum_i alpha_i grad_W
CE(f_W(x_i), softmax(y~_i))`` at the global weights ``W`` points along ``-U_real`` (a descent
step is minus the gradient), and sends them with one scale ``||U_real||``. The server decodes
``-scale * U_syn / ||U_syn||`` at the same ``W``.

Byte accounting (float32 on the wire; recorded, not estimated): FedAvg sends ``4 P`` bytes
per client and round; TOFU sends ``4 (N (D + K + 1) + 1)``.  The paper's defaults for ``N``,
the optimiser and the step count are unknown; ours are budgeted for a CPU (Adam, 100 steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netprism.federated.gradients import cosine, match_loss, weighted_gradient

BYTES_PER_FLOAT = 4  # float32 on the wire


@dataclass
class ProxySet:
    """What a TOFU client sends: proxy inputs, soft-label logits, weights and one scale.

    Attributes
    ----------
    x : Tensor (N, *input_shape)
    label_logits : Tensor (N, K)
        Soft labels are ``softmax(label_logits)``.
    alpha : Tensor (N,)
        Per-sample weights of the gradient sum.
    scale : float
        The norm of the encoded update (cosine matching fixes only the direction).
    """

    x: torch.Tensor
    label_logits: torch.Tensor
    alpha: torch.Tensor
    scale: float

    def to_arrays(self) -> list[np.ndarray]:
        """The wire format: four float32 arrays ``[x, label_logits, alpha, [scale]]``."""
        return [
            self.x.detach().numpy().astype(np.float32),
            self.label_logits.detach().numpy().astype(np.float32),
            self.alpha.detach().numpy().astype(np.float32),
            np.array([self.scale], dtype=np.float32),
        ]

    @classmethod
    def from_arrays(
        cls, arrays: list[np.ndarray], input_shape: tuple[int, ...], num_classes: int
    ) -> ProxySet:
        """Rebuild from :meth:`to_arrays`, checking every shape and finiteness."""
        if len(arrays) != 4:
            raise ValueError(
                f"a proxy set is 4 arrays [x, labels, alpha, scale], got {len(arrays)}"
            )
        x, logits, alpha, scale = (np.asarray(a, dtype=np.float32) for a in arrays)
        n = x.shape[0] if x.ndim > 0 else 0
        expected = {
            "x": ((n, *input_shape), x.shape),
            "label_logits": ((n, num_classes), logits.shape),
            "alpha": ((n,), alpha.shape),
            "scale": ((1,), scale.shape),
        }
        for name, (want, got) in expected.items():
            if tuple(got) != tuple(want) or n == 0:
                raise ValueError(f"proxy {name} must have shape {want} with N >= 1, got {got}")
        if not all(np.isfinite(a).all() for a in (x, logits, alpha, scale)):
            raise ValueError("proxy set contains NaN/inf values")
        return cls(
            torch.from_numpy(x), torch.from_numpy(logits), torch.from_numpy(alpha), float(scale[0])
        )

    def nbytes(self) -> int:
        """Bytes of the wire format (equals :func:`tofu_bytes`)."""
        return sum(a.nbytes for a in self.to_arrays())


def tofu_floats(n_proxy: int, d_input: int, num_classes: int) -> int:
    """Floats TOFU sends per client and round: ``N (D + K + 1) + 1``.

    Examples
    --------
    >>> tofu_floats(8, 64, 10)
    601
    """
    return n_proxy * (d_input + num_classes + 1) + 1


def tofu_bytes(n_proxy: int, d_input: int, num_classes: int) -> int:
    """Bytes of one TOFU message: ``4 (N (D + K + 1) + 1)``."""
    return BYTES_PER_FLOAT * tofu_floats(n_proxy, d_input, num_classes)


def fedavg_bytes(n_params: int) -> int:
    """Bytes of one full-precision update: ``4 P``."""
    return BYTES_PER_FLOAT * n_params


def compression_ratio(n_params: int, n_proxy: int, d_input: int, num_classes: int) -> float:
    """``P / (N (D + K + 1) + 1)``: FedAvg over TOFU floats per message.

    Examples
    --------
    >>> round(compression_ratio(2410, 8, 64, 10), 2)
    4.01
    >>> round(compression_ratio(15210, 16, 40, 10), 1)
    18.6
    """
    return n_params / tofu_floats(n_proxy, d_input, num_classes)


def hybrid_schedule(n_rounds: int, n_full: int) -> list[str]:
    """Round kinds: ``"tofu"`` first, then ``n_full`` full-precision rounds at the end.

    Examples
    --------
    >>> hybrid_schedule(4, 1)
    ['tofu', 'tofu', 'tofu', 'full']
    """
    if n_rounds < 1 or not 0 <= n_full <= n_rounds:
        raise ValueError(
            f"need n_rounds >= 1 and 0 <= n_full <= n_rounds, got {n_rounds}, {n_full}"
        )
    return ["tofu"] * (n_rounds - n_full) + ["full"] * n_full


def proxy_gradient(model: nn.Module, weights: torch.Tensor, proxy: ProxySet) -> torch.Tensor:
    """``U_syn = sum_i alpha_i grad_W CE(f_W(x_i), softmax(y~_i))`` at ``weights`` ``(P,)``."""
    soft = torch.softmax(proxy.label_logits, dim=1)  # (N, K)
    return weighted_gradient(model, weights, proxy.x, soft, proxy.alpha)


def decode_update(model: nn.Module, weights: torch.Tensor, proxy: ProxySet) -> torch.Tensor:
    """The server's decode: ``-scale * U_syn / ||U_syn||`` at the global ``weights`` ``(P,)``.

    Examples
    --------
    >>> m = nn.Linear(4, 3)
    >>> p = ProxySet(torch.rand(2, 4), torch.zeros(2, 3), torch.ones(2), 0.5)
    >>> from netprism.federated.gradients import flat_params
    >>> round(float(decode_update(m, flat_params(m), p).norm()), 4)
    0.5
    """
    g = proxy_gradient(model, weights.detach(), proxy)
    norm = g.norm()
    if not float(norm) > 0:
        return torch.zeros_like(g)
    return -proxy.scale * g / norm


def encode_update(
    model: nn.Module,
    weights: torch.Tensor,
    update: torch.Tensor,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    n_proxy: int = 8,
    steps: int = 100,
    lr: float = 0.1,
    seed: int = 0,
) -> tuple[ProxySet, float]:
    """Encode ``update`` ``(P,)`` into ``n_proxy`` proxy samples (the client's side of TOFU).

    Minimises ``1 - cos(U_syn, -update)`` over ``(x, y~, alpha)`` with Adam for ``steps``
    steps; inputs start as uniform noise in [0, 1], soft-label logits as N(0, 1) and
    ``alpha`` as ones.

    Parameters
    ----------
    model : nn.Module
        The architecture (its own parameter values are not used).
    weights : Tensor (P,)
        The global weights the round started from (the server decodes at the same point).
    update : Tensor (P,)
        ``U_real = W_local - W_global``.
    input_shape, num_classes : the model's input shape and ``K``.
    n_proxy, steps, lr, seed : ``N``, the encoder's budget, Adam's step size, the init seed.

    Returns
    -------
    (ProxySet, float)
        The message and ``cos(decode, update)``, the encoder's fidelity.
    """
    if n_proxy < 1 or steps < 0 or not lr > 0:
        raise ValueError(f"need n_proxy >= 1, steps >= 0, lr > 0; got {n_proxy}, {steps}, {lr}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n_proxy, *input_shape), generator=gen).requires_grad_(True)
    logits = torch.randn((n_proxy, num_classes), generator=gen).requires_grad_(True)
    alpha = torch.ones(n_proxy).requires_grad_(True)
    target = -update.detach()
    w = weights.detach()
    opt = torch.optim.Adam([x, logits, alpha], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        g = weighted_gradient(
            model, w, x, torch.softmax(logits, dim=1), alpha, create_graph=True
        )  # (P,)
        match_loss(g, target, "cosine").backward()
        opt.step()
    proxy = ProxySet(x.detach(), logits.detach(), alpha.detach(), float(update.norm()))
    return proxy, cosine(decode_update(model, w, proxy), update)
