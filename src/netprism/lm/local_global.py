"""Interleaved local (sliding-window, RoPE) and global (NoPE) attention for the byte LM.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), server
model: layers repeat in groups of ``local_per_global + 1`` (AFM: 3 + 1); the local layers attend
over a sliding window of ``W`` positions with RoPE, the last layer of each group attends over the
whole causal prefix with **no positional encoding** (NoPE).  GQA, QK-norm, SwiGLU, RMSNorm and the
tied head are those of :mod:`netprism.lm.model`.

**Window.**  Here the window *includes* the current token: the query at position ``p`` sees keys
at ``p - W < j <= p`` (``W`` keys).  (Apple's ``tamm`` excludes it.)  So a local layer needs
exactly ``W`` cached keys, and :class:`LocalGlobalCache` gives each local layer a ring buffer of
``min(W, max_len)`` slots and each global layer a full ``max_len`` buffer; relative to an
all-global cache at ``T`` the bytes are ``1/4 + 3/4 * min(W, T) / T`` for AFM's 3:1 pattern
(:func:`kv_bytes_ratio`).

``window=None`` makes every layer global; with ``nope_global=False`` global layers use RoPE, so
:func:`all_global_baseline` gives the all-RoPE baseline trained by the same code.  RoPE tables
are sized by ``max_context`` (default ``context``), which may exceed the training context to
measure bits per byte at longer lengths; the weights do not depend on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from netprism.lm.config import SHAPE_FIELDS, VOCAB_SIZE, LMConfig
from netprism.lm.layers import RMSNorm, apply_rope, check_idx, gpt2_init, register_rope
from netprism.lm.model import Attention, SwiGLU


@dataclass(frozen=True)
class LocalGlobalConfig:
    """Shape of a :class:`LocalGlobalLM`.

    Layer ``i`` is global iff ``window is None`` or ``i % (local_per_global + 1) ==
    local_per_global`` (AFM: three local, then one global).  ``head_dim`` and ``d_ff`` default as
    in :class:`~netprism.lm.model.LMConfig`.
    """

    context: int = 256
    n_layers: int = 8
    d_model: int = 128
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int | None = None
    d_ff: int | None = None
    window: int | None = 64
    local_per_global: int = 3
    nope_global: bool = True
    max_context: int | None = None
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self) -> None:
        _ = self.lm_config  # validates the shared fields
        if self.window is not None and (
            not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1
        ):
            raise ValueError(f"window must be a positive int or None, got {self.window!r}")
        lpg = self.local_per_global
        if not isinstance(lpg, int) or isinstance(lpg, bool) or lpg < 0:
            raise ValueError(f"local_per_global must be an int >= 0, got {lpg!r}")
        if not isinstance(self.nope_global, bool):
            raise ValueError(f"nope_global must be a bool, got {self.nope_global!r}")
        mc = self.max_context
        if mc is not None and (not isinstance(mc, int) or isinstance(mc, bool) or mc < 1):
            raise ValueError(f"max_context must be a positive int or None, got {mc!r}")

    @property
    def lm_config(self) -> LMConfig:
        """The dense :class:`LMConfig` with the same layer shapes."""
        return LMConfig(**{name: getattr(self, name) for name in SHAPE_FIELDS})

    @property
    def max_ctx(self) -> int:
        """Longest input (RoPE table rows)."""
        return self.context if self.max_context is None else self.max_context

    def is_global(self, i: int) -> bool:
        """Whether layer ``i`` (0-based) attends globally."""
        g = self.local_per_global
        return self.window is None or i % (g + 1) == g

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def all_global_baseline(config: LocalGlobalConfig) -> LocalGlobalConfig:
    """The same shape with every layer global and RoPE everywhere."""
    return replace(config, window=None, nope_global=False)


class LocalGlobalCache:
    """Per-layer keys/values: a ring buffer of ``min(W, max_len)`` slots for local layers, a full
    ``max_len`` buffer for global ones, each ``(B, n_kv_heads, slots, head_dim)``.

    Position ``p`` of a layer with ``S`` slots lives in slot ``p % S``; ``position`` is the next
    position to write.  After each forward a local ring holds exactly the ``W`` keys/values that
    the last query attended to (positions ``position - W .. position - 1``); a new chunk attends
    over the ring concatenated with its own keys, then its last ``min(W, Tq)`` entries overwrite
    the oldest slots.
    """

    def __init__(
        self,
        config: LocalGlobalConfig,
        batch_size: int,
        *,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        max_len = config.max_ctx if max_len is None else max_len
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        lc = config.lm_config
        self.slots = [
            max_len if config.is_global(i) or config.window is None else min(config.window, max_len)
            for i in range(config.n_layers)
        ]
        shapes = [(batch_size, lc.n_kv_heads, s, lc.hd) for s in self.slots]
        self.k = [torch.zeros(s, dtype=dtype, device=device) for s in shapes]
        self.v = [torch.zeros(s, dtype=dtype, device=device) for s in shapes]
        self.batch_size, self.max_len, self.position = batch_size, max_len, 0

    def nbytes(self) -> int:
        """Bytes allocated by the real cache tensors."""
        return sum(t.nbytes for t in self.k + self.v)

    def reset(self) -> None:
        self.position = 0

    def update(
        self, i: int, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys/values to attend over for new ``k, v`` ``(B, nkv, Tq, hd)`` of layer ``i``.

        Returns the cached entries followed by the new ones, ``(B, nkv, Tk, hd)`` each, and their
        absolute positions ``(Tk,)`` (``-1`` marks an empty slot); then stores the new entries.
        """
        S, Tq, ck, cv = self.slots[i], k.shape[2], self.k[i], self.v[i]
        new_pos = torch.arange(start, start + Tq, device=k.device)
        if S >= self.max_len:  # full buffer: positions are slots
            ck[:, :, start : start + Tq], cv[:, :, start : start + Tq] = k, v
            return (
                ck[:, :, : start + Tq],
                cv[:, :, : start + Tq],
                torch.arange(start + Tq, device=k.device),
            )
        slot = torch.arange(S, device=k.device)
        old_pos = start - 1 - torch.remainder(start - 1 - slot, S)  # latest p < start in slot
        old_pos = torch.where(old_pos >= 0, old_pos, -1)
        keys, values = torch.cat([ck, k], dim=2), torch.cat([cv, v], dim=2)
        m = min(S, Tq)  # only the last S new entries survive in the ring
        write = new_pos[-m:] % S
        ck[:, :, write], cv[:, :, write] = k[:, :, -m:], v[:, :, -m:]
        return keys, values, torch.cat([old_pos, new_pos])


def band_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """Boolean ``(Tq, Tk)``: key ``j`` visible from query ``p`` iff ``0 <= j <= p`` and, with a
    window, ``j > p - window``.

    >>> band_mask(torch.arange(4), torch.arange(4), 2).int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    q, k = q_pos[:, None], k_pos[None, :]
    mask = (k >= 0) & (k <= q)
    return mask & (k > q - window) if window is not None else mask


class LGAttention(Attention):
    """GQA with QK-norm (the layers of :class:`~netprism.lm.model.Attention`); sliding-window
    with RoPE (``window``) or global, with or without RoPE."""

    def __init__(self, cfg: LMConfig, window: int | None, use_rope: bool) -> None:
        super().__init__(cfg, owns_kv=True)
        self.window, self.use_rope = window, use_rope

    def forward(  # type: ignore[override]  # a ring-buffer cache, no shared K/V
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: tuple[LocalGlobalCache, int] | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` ``(B, Tq, C)`` at positions ``pos`` ``(Tq,)``; ``cache`` is
        ``(cache, layer index)``, read and written.  Returns ``(B, Tq, C)``."""
        B, Tq, _ = x.shape
        q = self.q_norm(self.q(x).view(B, Tq, self.n_heads, self.hd).transpose(1, 2))
        k = self.k_norm(self.k(x).view(B, Tq, self.n_kv_heads, self.hd).transpose(1, 2))
        v = self.v(x).view(B, Tq, self.n_kv_heads, self.hd).transpose(1, 2)  # (B, nkv, Tq, hd)
        if self.use_rope:
            cos, sin = rope[0][pos], rope[1][pos]  # (Tq, hd)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k_pos = pos
        if cache is not None:
            k, v, k_pos = cache[0].update(cache[1], k, v, int(pos[0]))
        mask = band_mask(pos, k_pos.to(pos.device), self.window)  # (Tq, Tk)
        return self.attend(q, k, v, mask)


class LGLayer(nn.Module):
    """Pre-norm residual layer: local or global attention, then SwiGLU."""

    def __init__(self, cfg: LocalGlobalConfig, is_global: bool) -> None:
        super().__init__()
        lc = cfg.lm_config
        self.is_global = is_global
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        window = None if is_global else cfg.window
        self.attn = LGAttention(lc, window, use_rope=not (is_global and cfg.nope_global))
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(lc)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: tuple[LocalGlobalCache, int] | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), pos, rope, cache)
        return x + self.mlp(self.mlp_norm(x))


class LocalGlobalLM(nn.Module):
    """Byte LM with interleaved local/global attention: ``(B, T)`` ids to ``(B, T, 256)`` logits.

    Examples
    --------
    >>> cfg = LocalGlobalConfig(context=16, n_layers=4, d_model=16, n_heads=2, n_kv_heads=1,
    ...                         window=4, max_context=32)
    >>> model = LocalGlobalLM(cfg).eval()
    >>> idx = torch.randint(0, 256, (2, 24))
    >>> cache = model.new_cache(2)
    >>> steps = [model(idx[:, :5], cache=cache)] + [model(idx[:, t:t+1], cache=cache)
    ...                                              for t in range(5, 24)]
    >>> bool(torch.allclose(torch.cat(steps, 1), model(idx), atol=1e-5))
    True
    """

    def __init__(self, config: LocalGlobalConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(
            LGLayer(config, config.is_global(i)) for i in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        register_rope(self, config.max_ctx, config.lm_config.hd, config.rope_theta)
        gpt2_init(self, config.n_layers)

    def new_cache(self, batch_size: int, max_len: int | None = None) -> LocalGlobalCache:
        """An empty :class:`LocalGlobalCache` on this model's device and dtype."""
        w = self.embed.weight
        return LocalGlobalCache(
            self.config, batch_size, max_len=max_len, dtype=w.dtype, device=w.device
        )

    def forward(self, idx: torch.Tensor, cache: LocalGlobalCache | None = None) -> torch.Tensor:
        """Next-byte logits.

        Parameters
        ----------
        idx : Tensor (B, T) of integers in ``[0, 256)``
            With ``cache``, the bytes that follow the ``cache.position`` already cached.
        cache : LocalGlobalCache, optional
            Read and written in place; ``position`` advances by ``T``.

        Returns
        -------
        Tensor (B, T, 256)
        """
        check_idx(idx, self.config.max_ctx, self.config.vocab_size)
        B, T = idx.shape
        start = 0 if cache is None else cache.position
        if cache is not None:
            if cache.batch_size != B:
                raise ValueError(f"cache holds batch size {cache.batch_size}, input has {B}")
            if start + T > min(cache.max_len, self.config.max_ctx):
                raise ValueError(
                    f"cache at position {start} has room for "
                    f"{min(cache.max_len, self.config.max_ctx)} bytes; {T} more do not fit"
                )
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        rope = (self.rope_cos, self.rope_sin)
        x = self.embed(idx.long())  # (B, T, C)
        for i, layer in enumerate(self.layers):
            x = layer(x, pos, rope, None if cache is None else (cache, i))
        if cache is not None:
            cache.position = start + T
        return F.linear(self.norm(x), self.embed.weight)  # tied output embedding


def kv_bytes_ratio(config: LocalGlobalConfig, T: int, *, batch_size: int = 1) -> float:
    """Bytes of a :class:`LocalGlobalCache` sized for ``T`` over those of the all-global one.

    Both caches are allocated and their real tensors measured.

    >>> cfg = LocalGlobalConfig(n_layers=4, d_model=16, n_heads=2, n_kv_heads=1, window=64)
    >>> kv_bytes_ratio(cfg, 256), 1 / 4 + 3 / 4 * 64 / 256
    (0.4375, 0.4375)
    """
    return float(kv_bytes_fraction(config, T, batch_size=batch_size))


def kv_bytes_fraction(config: LocalGlobalConfig, T: int, *, batch_size: int = 1) -> Fraction:
    """:func:`kv_bytes_ratio` as an exact :class:`~fractions.Fraction`."""
    ours = LocalGlobalCache(config, batch_size, max_len=T).nbytes()
    base = LocalGlobalCache(all_global_baseline(config), batch_size, max_len=T).nbytes()
    return Fraction(ours, base)
