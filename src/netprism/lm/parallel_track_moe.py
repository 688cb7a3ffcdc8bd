"""Dropless top-k mixture-of-experts feed-forward for the parallel-track byte LM.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), section on
the server model's PT-MoE (and the Parallel-Track companion paper, arXiv 2602.07306): each track
owns its experts and a linear router whose logits are soft-capped as ``cap * tanh(logits / cap)``
(cap 50 in Apple's ``tamm``); every token goes to its ``top_k`` experts with no capacity limit
(dropless), and the experts are SwiGLU feed-forwards.

**Gates.**  The gate weights are a softmax over the ``top_k`` selected (capped) logits only, so
they sum to 1 per token; an expert outside the top-k gets weight 0.

**Dispatch.**  Token-expert assignments are grouped by expert with an index gather
(``x[token_ids]``) and the weighted expert outputs are summed back with ``index_add_``; no token
is ever dropped.  Each forward records the load (assignments per expert) and a Switch-style
auxiliary loss ``E * sum_e f_e * P_e`` (``f_e``: fraction of assignments to expert ``e``,
``P_e``: mean router probability of ``e``), which a training loop may add (it is not used by
:func:`netprism.lm.train.train_lm`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from netprism.lm.config import LMConfig
from netprism.lm.model import SwiGLU


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """``cap * tanh(logits / cap)``: smooth, odd, and bounded by ``cap`` in absolute value.

    >>> softcap(torch.tensor([0.0, 1e6, -1e6]), 50.0).tolist()
    [0.0, 50.0, -50.0]
    """
    return cap * torch.tanh(logits / cap)


def load_entropy(load: torch.Tensor) -> float:
    """Entropy of the expert load ``(E,)`` normalised by ``ln E`` to ``[0, 1]``.

    1 for a perfectly uniform load, 0 when every assignment hits one expert (and, by
    convention, 1 for ``E = 1`` or an empty load).

    >>> load_entropy(torch.tensor([5, 5, 5, 5])), load_entropy(torch.tensor([0, 9, 0, 0]))
    (1.0, 0.0)
    """
    counts = load.detach().double().flatten()
    n_experts, total = counts.numel(), float(counts.sum())
    if n_experts <= 1 or total == 0:
        return 1.0
    p = counts[counts > 0] / total
    return abs(float((p * p.log()).sum())) / math.log(n_experts)


class MoE(nn.Module):
    """Soft-capped router, top-k dropless dispatch, SwiGLU experts.

    Parameters
    ----------
    cfg : LMConfig
        Supplies ``d_model`` and ``norm_eps``; ``cfg.ff`` is the expert inner width.
    n_experts, top_k : int
    router_softcap : float

    Attributes
    ----------
    last_load : LongTensor (E,)
        Token-expert assignments per expert in the last forward (sums to ``N * top_k``).
    last_aux_loss : Tensor ()
        Switch-style load-balancing loss of the last forward (differentiable).
    """

    def __init__(self, cfg: LMConfig, n_experts: int, top_k: int, router_softcap: float) -> None:
        super().__init__()
        self.n_experts, self.top_k, self.cap = n_experts, top_k, router_softcap
        self.router = nn.Linear(cfg.d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(cfg) for _ in range(n_experts))
        self.last_load = torch.zeros(n_experts, dtype=torch.long)
        self.last_aux_loss = torch.zeros(())

    def router_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Soft-capped router logits ``(..., E)`` of tokens ``x`` ``(..., C)``."""
        return softcap(self.router(x), self.cap)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k routing of ``x`` ``(N, C)``.

        Returns
        -------
        logits : Tensor (N, E)
            Capped router logits.
        experts : LongTensor (N, k)
            Chosen experts, best first.
        gates : Tensor (N, k)
            Softmax over the chosen logits.
        """
        logits = self.router_logits(x)  # (N, E)
        top, experts = torch.topk(logits, self.top_k, dim=-1)  # (N, k)
        return logits, experts, torch.softmax(top, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture output for ``x`` ``(B, T, C)``, shape ``(B, T, C)``."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (N, C)
        logits, experts, gates = self.route(flat)
        n_tokens = flat.shape[0]
        expert_ids = experts.reshape(-1)  # (N*k,)
        token_ids = torch.arange(n_tokens, device=x.device).repeat_interleave(self.top_k)
        order = torch.argsort(expert_ids, stable=True)  # group assignments by expert
        load = torch.bincount(expert_ids, minlength=self.n_experts)  # (E,)
        tokens_sorted, gates_sorted = token_ids[order], gates.reshape(-1)[order]
        out = torch.zeros_like(flat)
        start = 0
        for e, count in enumerate(load.tolist()):
            if count:
                tok = tokens_sorted[start : start + count]  # (n_e,)
                y = self.experts[e](flat[tok]) * gates_sorted[start : start + count, None]
                out = out.index_add(0, tok, y)
                start += count
        self.last_load = load.detach()
        frac = load.to(flat.dtype) / (n_tokens * self.top_k)  # f_e
        prob = torch.softmax(logits, dim=-1).mean(0)  # P_e
        self.last_aux_loss = self.n_experts * (frac * prob).sum()
        return out.reshape(shape)

    def expert_params(self) -> int:
        """Parameters of one expert."""
        return sum(p.numel() for p in self.experts[0].parameters())


def moe_layers(model: nn.Module) -> list[MoE]:
    """Every :class:`MoE` inside ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, MoE)]


def aux_loss(model: nn.Module) -> torch.Tensor:
    """Sum of the Switch auxiliary losses of the last forward over all MoE layers of ``model``."""
    losses = [m.last_aux_loss for m in moe_layers(model)]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def check_moe_args(n_experts: int, top_k: int, cap: float) -> None:
    """``ValueError`` unless ``1 <= top_k <= n_experts`` and ``cap`` is a positive finite number."""
    if not 1 <= top_k <= n_experts:
        raise ValueError(f"top_k must be in [1, n_experts={n_experts}], got {top_k!r}")
    if not (isinstance(cap, (int, float)) and cap > 0 and math.isfinite(cap)):
        raise ValueError(f"router_softcap must be a positive finite number, got {cap!r}")


__all__ = ["MoE", "aux_loss", "check_moe_args", "load_entropy", "moe_layers", "softcap"]
