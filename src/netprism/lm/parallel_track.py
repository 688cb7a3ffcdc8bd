"""Parallel-Track (PT) transformer with optional mixture-of-experts, for the byte LM.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), server
model; "Parallel Track Transformers" companion paper (arXiv 2602.07306).  ``n_tracks`` smaller
transformers run side by side.  Their ``n_layers`` layers are grouped into blocks of depth
``D = block_depth``; inside a block the tracks never communicate.  At every block boundary the
tracks' hidden states are **mean-combined** and the result is replicated into every track
(dispatch) for the next block, so one forward performs ``L / D`` cross-track synchronisations
against ``2 L`` all-reduces for tensor parallelism (after attention and after the FFN of every
layer).  The byte embedding is shared and dispatched into every track; after the last combine a
final RMSNorm and the tied output head give the logits.

Layers reuse :mod:`netprism.lm.model` (GQA attention with QK-norm and RoPE, SwiGLU, RMSNorm).  With
``moe=True`` each track's FFNs alternate dense, MoE, dense, MoE ... (:mod:`.parallel_track_moe`).

**Parameter accounting.**  ``count_params`` returns ``(total, active_per_token)``; active counts
every parameter except the ``n_experts - top_k`` experts a token does not use in each MoE layer
(the tied embedding/head counts once, as for a dense model).  :func:`match_width` picks the
``d_model`` of a template config (dense :class:`~netprism.lm.model.LMConfig` or
:class:`PTConfig`) whose active parameters match a target within a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from netprism.lm.config import SHAPE_FIELDS, VOCAB_SIZE, LMConfig
from netprism.lm.layers import RMSNorm, check_idx, gpt2_init, register_rope
from netprism.lm.model import Attention, SwiGLU
from netprism.lm.parallel_track_moe import MoE, check_moe_args, moe_layers

PT_RESIDUAL_OUTPUTS = ("attn.o.weight", "down.weight")
"""Residual output projections of a PT layer: the dense FFN's ``down`` and every expert's."""


@dataclass(frozen=True)
class PTConfig:
    """Shape of a :class:`ParallelTrackLM`.

    ``n_layers`` is per track and must be a multiple of ``block_depth``.  ``d_model`` is the
    track width (shared by the embedding).  ``head_dim`` defaults to ``d_model // n_heads``,
    ``d_ff`` to ``3.25 * d_model`` rounded up to a multiple of 8 and ``expert_d_ff`` to half of
    ``d_ff`` rounded up to a multiple of 8 (tamm's 2944 / 5888).  With ``moe`` the FFN of every
    odd layer (0-based) of each track is an MoE of ``n_experts`` experts, ``top_k`` per token.
    """

    context: int = 256
    n_layers: int = 4
    n_tracks: int = 2
    block_depth: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int | None = None
    d_ff: int | None = None
    n_experts: int = 4
    top_k: int = 2
    expert_d_ff: int | None = None
    moe: bool = True
    router_softcap: float = 50.0
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self) -> None:
        for name in ("n_tracks", "block_depth", "n_experts", "top_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("d_ff", "expert_d_ff"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        _ = self.track_config  # validates the shared fields (context, heads, head_dim, ...)
        if self.n_layers % self.block_depth:
            raise ValueError(
                f"n_layers ({self.n_layers}) must be a multiple of block_depth ({self.block_depth})"
            )
        if not isinstance(self.moe, bool):
            raise ValueError(f"moe must be a bool, got {self.moe!r}")
        check_moe_args(self.n_experts, self.top_k, self.router_softcap)

    @property
    def track_config(self) -> LMConfig:
        """The :class:`LMConfig` of one track's dense layers."""
        return LMConfig(**{name: getattr(self, name) for name in SHAPE_FIELDS})

    @property
    def expert_ff(self) -> int:
        """Expert SwiGLU inner width."""
        if self.expert_d_ff is not None:
            return self.expert_d_ff
        return 8 * math.ceil(self.track_config.ff / 2 / 8)

    @property
    def n_blocks(self) -> int:
        """Track blocks ``L / D`` (= cross-track combines per forward)."""
        return self.n_layers // self.block_depth

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer ``i`` (0-based, within a track) has an MoE FFN: dense, MoE, dense, ..."""
        return self.moe and i % 2 == 1

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class PTLayer(nn.Module):
    """Pre-norm residual layer of one track: attention then a dense or MoE FFN."""

    def __init__(self, cfg: PTConfig, moe: bool) -> None:
        super().__init__()
        tc = cfg.track_config
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(tc, owns_kv=True)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp: nn.Module = (
            MoE(replace(tc, d_ff=cfg.expert_ff), cfg.n_experts, cfg.top_k, cfg.router_softcap)
            if moe
            else SwiGLU(tc)
        )

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """``(B, T, C)`` to ``(B, T, C)`` at positions ``pos`` ``(T,)``."""
        x = x + self.attn(self.attn_norm(x), pos, rope)[0]
        return x + self.mlp(self.mlp_norm(x))


class TrackCombine(nn.Module):
    """The cross-track synchronisation: mean over the track axis; counts its calls.

    ``calls`` is the number of combines since the last :meth:`reset`; forward hooks on this
    module see every combine too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(n_tracks, B, T, C)`` to ``(B, T, C)``."""
        self.calls += 1
        return h.mean(dim=0)


class ParallelTrackLM(nn.Module):
    """Parallel-track byte LM: ``(B, T)`` byte ids to ``(B, T, 256)`` next-byte logits.

    Examples
    --------
    >>> cfg = PTConfig(context=16, n_layers=4, n_tracks=2, block_depth=2, d_model=16, n_heads=2,
    ...                n_kv_heads=1, n_experts=4, top_k=2)
    >>> model = ParallelTrackLM(cfg)
    >>> model(torch.randint(0, 256, (2, 5))).shape
    torch.Size([2, 5, 256])
    >>> model.sync_count, model.syncs_per_forward(), model.tensor_parallel_syncs()
    (2, 2, 8)
    """

    def __init__(self, config: PTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.tracks = nn.ModuleList(
            nn.ModuleList(PTLayer(config, config.is_moe_layer(i)) for i in range(config.n_layers))
            for _ in range(config.n_tracks)
        )
        self.combine = TrackCombine()
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        register_rope(self, config.context, config.track_config.hd, config.rope_theta)
        gpt2_init(self, config.n_layers, PT_RESIDUAL_OUTPUTS)

    @property
    def sync_count(self) -> int:
        """Cross-track combines performed by the last forward."""
        return self.combine.calls

    def syncs_per_forward(self) -> int:
        """PT synchronisations per forward, ``L / D``."""
        return self.config.n_blocks

    def tensor_parallel_syncs(self) -> int:
        """All-reduces per forward of a tensor-parallel equivalent, ``2 L``."""
        return 2 * self.config.n_layers

    def run_block(self, block: int, h: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Run block ``block`` of every track on its own state, without combining.

        Parameters
        ----------
        block : int
            In ``[0, L / D)``.
        h : Tensor (n_tracks, B, T, C)
            Each track's input hidden state.
        pos : LongTensor (T,)

        Returns
        -------
        Tensor (n_tracks, B, T, C)
        """
        D = self.config.block_depth
        rope = (self.rope_cos, self.rope_sin)
        outs = []
        for track, x in zip(self.tracks, h):  # tracks never see each other inside a block
            assert isinstance(track, nn.ModuleList)
            for layer in track[block * D : (block + 1) * D]:
                x = layer(x, pos, rope)
            outs.append(x)
        return torch.stack(outs)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-byte logits.

        Parameters
        ----------
        idx : Tensor (B, T) of integers in ``[0, 256)``, ``T <= context``

        Returns
        -------
        Tensor (B, T, 256)
        """
        check_idx(idx, self.config.context, self.config.vocab_size)
        self.combine.reset()
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.embed(idx.long())  # (B, T, C)
        n = self.config.n_tracks
        for block in range(self.config.n_blocks):
            h = x.unsqueeze(0).expand(n, *x.shape)  # dispatch: (n_tracks, B, T, C)
            x = self.combine(self.run_block(block, h, pos))  # (B, T, C)
        return F.linear(self.norm(x), self.embed.weight)  # tied output embedding

    def expert_load(self) -> list[torch.Tensor]:
        """Per-MoE-layer expert loads ``(E,)`` of the last forward (track-major order)."""
        return [m.last_load for m in moe_layers(self)]


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(total, active_per_token)`` parameters of any model, from its real tensors.

    Active excludes, in every :class:`~netprism.lm.parallel_track_moe.MoE`, the
    ``n_experts - top_k`` experts a token does not use; a dense model has ``active == total``.
    """
    total = sum(p.numel() for p in model.parameters())
    idle = sum((m.n_experts - m.top_k) * m.expert_params() for m in moe_layers(model))
    return total, total - idle


def config_params(cfg: LMConfig | PTConfig) -> tuple[int, int]:
    """``(total, active_per_token)`` in closed form, equal to :func:`count_params` of the model.

    >>> from netprism.lm.model import ByteLM
    >>> cfg = LMConfig(context=8, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1)
    >>> config_params(cfg)[0] == count_params(ByteLM(cfg))[0]
    True
    """
    tc = cfg.track_config if isinstance(cfg, PTConfig) else cfg
    C, hd, V = tc.d_model, tc.hd, tc.vocab_size
    q_o = 2 * C * tc.n_heads * tc.hd + hd  # q, o, q_norm
    kv = 2 * C * tc.n_kv_heads * hd + hd  # k, v, k_norm
    dense = 3 * C * tc.ff + 2 * C  # SwiGLU + 2 layer norms
    embed_head = V * C + C  # tied embedding + final norm
    if isinstance(cfg, LMConfig):
        total = embed_head + cfg.n_layers * (q_o + dense) + cfg.n_kv_layers * kv
        return total, total
    expert = 3 * C * cfg.expert_ff
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.n_layers))
    moe_extra = C * cfg.n_experts + cfg.n_experts * expert - 3 * C * tc.ff  # replaces the dense
    per_track = cfg.n_layers * (q_o + kv + dense) + n_moe * moe_extra
    total = embed_head + cfg.n_tracks * per_track
    return total, total - cfg.n_tracks * n_moe * (cfg.n_experts - cfg.top_k) * expert


_Cfg = TypeVar("_Cfg", LMConfig, PTConfig)


def match_width(
    template: _Cfg, target_active: int, *, widths: Iterable[int] | None = None, tol: float = 0.05
) -> _Cfg:
    """``template`` with the ``d_model`` whose active parameters are closest to ``target_active``.

    Only ``d_model`` changes (``head_dim``, ``d_ff``, ``expert_d_ff`` left ``None`` scale with it);
    widths whose config is invalid (e.g. odd head_dim) are skipped.

    Parameters
    ----------
    template : LMConfig or PTConfig
    target_active : int
        Active parameters per token to match, e.g. ``config_params(dense)[1]``.
    widths : iterable of int, optional
        Candidate widths (default 8, 16, ..., 1024).
    tol : float
        Largest accepted relative error.

    Raises
    ------
    ValueError
        If no candidate is within ``tol``.

    Examples
    --------
    >>> dense = LMConfig(n_layers=8, d_model=96, n_heads=4, n_kv_heads=2)
    >>> pt = match_width(PTConfig(n_layers=4, n_tracks=2, block_depth=2, n_heads=4, n_kv_heads=2,
    ...                           n_experts=4, top_k=2), config_params(dense)[1])
    >>> pt.d_model, round(config_params(pt)[1] / config_params(dense)[1], 3)
    (96, 1.011)
    """
    best: tuple[float, _Cfg] | None = None
    for d in range(8, 1025, 8) if widths is None else widths:
        try:
            cfg = replace(template, d_model=d)
        except ValueError:
            continue
        err = abs(config_params(cfg)[1] / target_active - 1)
        if best is None or err < best[0]:
            best = (err, cfg)
    if best is None or best[0] > tol:
        got = "no valid width" if best is None else f"best d_model={best[1].d_model} off by "
        raise ValueError(
            f"no width matches target_active={target_active} within tol={tol}: "
            f"{got}{'' if best is None else f'{best[0]:.1%}'}"
        )
    return best[1]
