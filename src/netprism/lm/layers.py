"""Layers and helpers shared by the three byte LMs (:class:`~netprism.lm.model.ByteLM`,
:class:`~netprism.lm.local_global.LocalGlobalLM`,
:class:`~netprism.lm.parallel_track.ParallelTrackLM`): RMSNorm, rotary tables, GPT-2-style
initialisation and the input check.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575) for the
layer shapes (RMSNorm, rotate-half RoPE); the initialisation is GPT-2's ("Language Models are
Unsupervised Multitask Learners", Radford et al. 2019) as in nanoGPT: every linear and embedding
weight ``N(0, 0.02^2)``, residual output projections ``N(0, (0.02 / sqrt(2 L))^2)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "RESIDUAL_OUTPUTS",
    "RMSNorm",
    "apply_rope",
    "check_idx",
    "gpt2_init",
    "init_weights",
    "register_rope",
    "rope_tables",
]

RESIDUAL_OUTPUTS: tuple[str, ...] = ("attn.o.weight", "mlp.down.weight")
"""Parameter-name suffixes of the projections that write into the residual stream."""


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(context: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` of shape ``(context, head_dim)`` for rotate-half RoPE."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(context, dtype=torch.float64), inv_freq)  # (ctx, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (ctx, hd)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(B, nh, T, hd)`` by the tables' rows ``(T, hd)`` for its positions."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def register_rope(module: nn.Module, context: int, head_dim: int, theta: float) -> None:
    """Register the non-persistent buffers ``rope_cos``, ``rope_sin`` ``(context, head_dim)``
    of :func:`rope_tables` on ``module`` (they follow its device, never its state dict)."""
    cos, sin = rope_tables(context, head_dim, theta)
    module.register_buffer("rope_cos", cos, persistent=False)
    module.register_buffer("rope_sin", sin, persistent=False)


def init_weights(m: nn.Module) -> None:
    """GPT-2 initialisation of one module: linear and embedding weights ``N(0, 0.02^2)``."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)


def gpt2_init(
    model: nn.Module, n_layers: int, residual: tuple[str, ...] = RESIDUAL_OUTPUTS
) -> None:
    """Initialise ``model`` in place, GPT-2 style: :func:`init_weights` on every module, then
    the parameters whose names end with one of ``residual`` get ``std = 0.02 / sqrt(2 L)``
    (``L = n_layers``), so the residual stream's variance does not grow with depth."""
    model.apply(init_weights)
    for name, p in model.named_parameters():
        if name.endswith(residual):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))


def check_idx(idx: torch.Tensor, context: int, vocab_size: int) -> None:
    """Check a model input: an integer tensor ``(B, T)`` with ``1 <= T <= context`` and ids in
    ``[0, vocab_size)``; ``ValueError`` naming the bad shape, length or id range otherwise."""
    if not isinstance(idx, torch.Tensor) or idx.ndim != 2 or idx.is_floating_point():
        got = (
            f"shape {tuple(idx.shape)} dtype {idx.dtype}"
            if isinstance(idx, torch.Tensor)
            else type(idx).__name__
        )
        raise ValueError(f"idx must be an integer tensor of shape (B, T), got {got}")
    T = idx.shape[1]
    if T < 1:
        raise ValueError("idx must hold at least one byte per row, got T=0")
    if T > context:
        raise ValueError(f"input of {T} bytes is longer than the model's context of {context}")
    if int(idx.min()) < 0 or int(idx.max()) >= vocab_size:
        raise ValueError(
            f"byte ids must be in [0, {vocab_size}), got range [{int(idx.min())}, {int(idx.max())}]"
        )
