"""A small vision transformer: patch embedding, class token, pre-norm blocks, linear head.

After Dosovitskiy et al., "An Image Is Worth 16x16 Words: Transformers for Image Recognition
at Scale", ICLR 2021 (arXiv 2010.11929), shrunk for 8x8 to 32x32 inputs.  Every projection is
its own ``nn.Linear`` so a lens or a compressor can factorize each one by name: block ``i``
holds ``blocks.{i}.attn.q``, ``.k``, ``.v``, ``.proj`` and ``blocks.{i}.mlp.fc1``, ``.fc2``;
the classifier is ``head``.  The patch embedding is the strided ``patch_embed`` convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.validation import check_fraction, check_positive_int
from netprism.models.registry import check_image_shape, register_model

# Init std of ``pos_embed`` and ``cls_token``.  The paper's 0.02 (tuned for long ImageNet runs)
# leaves position nearly invisible next to the O(0.5) patch features, so short runs on 8x8
# digits sit at chance for several epochs; 0.2 makes position usable from the first step.
_EMBED_STD = 0.2


@dataclass(frozen=True)
class ViTConfig:
    """Everything needed to rebuild a :class:`ViT` (kept on the model as ``model.config``)."""

    in_channels: int
    image_size: tuple[int, int]
    num_classes: int
    patch_size: int
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    @property
    def num_tokens(self) -> int:
        """``T = (H / p) * (W / p) + 1`` (patches plus the class token)."""
        h, w = self.image_size
        return (h // self.patch_size) * (w // self.patch_size) + 1


class Attention(nn.Module):
    """Multi-head self-attention with separate ``q``, ``k``, ``v`` and ``proj`` layers."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape  # (B, T, D)
        nh, hs = self.heads, D // self.heads
        q = self.q(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.v(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.drop(self.proj(y))


class MLP(nn.Module):
    """``fc1 -> GELU -> dropout -> fc2 -> dropout`` on each token."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))  # (B, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, dropout)
        self.ln2, self.mlp = nn.LayerNorm(dim), MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, D)
        return x + self.mlp(self.ln2(x))  # (B, T, D)


class ViT(nn.Module):
    """Vision transformer for ``(C, H, W)`` images; input ``(N, C, H, W)`` -> logits ``(N, K)``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patch_embed = nn.Conv2d(c.in_channels, c.dim, c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.num_tokens, c.dim))
        nn.init.normal_(self.cls_token, std=_EMBED_STD)
        nn.init.normal_(self.pos_embed, std=_EMBED_STD)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.dim, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens ``(N, T, D)``; token 0 is the class token."""
        x = self.patch_embed(x)  # (B, D, H/p, W/p)
        x = x.flatten(2).transpose(1, 2)  # (B, T-1, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = self.drop(torch.cat([cls, x], dim=1) + self.pos_embed)  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        return self.norm(x)  # (B, T, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])  # (B, D) -> (B, K)


@register_model("vit_tiny", image_only=True)
def vit_tiny(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    patch_size: int | None = None,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    dropout: float = 0.0,
) -> nn.Module:
    """Build a small :class:`ViT` for ``(C, H, W)`` images.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``, e.g. ``(1, 8, 8)`` or ``(3, 32, 32)``.
    num_classes : int
        ``K`` output logits.
    patch_size : int, optional
        Side ``p`` of the square patches; must divide ``H`` and ``W``.  Default: 2 when
        ``H <= 8``, else 4 (16 or 64 patches for 8x8 or 32x32 inputs).
    dim, depth, heads : int, default 64, 4, 4
        Token width ``D`` (divisible by ``heads``), number of blocks, attention heads.
    mlp_ratio : float, default 2.0
        Hidden width of each MLP as a multiple of ``D``.
    dropout : float, default 0.0
        Dropout on embeddings, attention weights and residual branches.

    Returns
    -------
    nn.Module
        A :class:`ViT` mapping ``(N, C, H, W)`` to logits ``(N, K)``.

    Examples
    --------
    >>> import torch
    >>> m = vit_tiny(input_shape=(1, 8, 8), num_classes=10, dim=16, depth=1)
    >>> m(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    C, H, W = check_image_shape(input_shape, "vit_tiny")
    check_positive_int(num_classes, "num_classes")
    p = (2 if H <= 8 else 4) if patch_size is None else patch_size
    check_positive_int(p, "patch_size")
    if H % p or W % p:
        raise ValueError(
            f"patch_size {p} must divide H and W of input_shape {tuple(input_shape)!r}"
        )
    for value, name in ((dim, "dim"), (depth, "depth"), (heads, "heads")):
        check_positive_int(value, name)
    if dim % heads:
        raise ValueError(f"dim must be divisible by heads, got dim={dim}, heads={heads}")
    if not mlp_ratio > 0 or int(dim * mlp_ratio) < 1:
        raise ValueError(f"mlp_ratio must give an MLP width >= 1, got {mlp_ratio!r}")
    check_fraction(dropout, "dropout")
    config = ViTConfig(C, (H, W), num_classes, p, dim, depth, heads, float(mlp_ratio), dropout)
    return ViT(config)
