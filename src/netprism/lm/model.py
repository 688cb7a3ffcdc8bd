"""A tiny decoder-only byte transformer with the on-device model's shape and KV-cache sharing.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575); layer
shapes follow Apple's ``tamm`` reference config ``AFMTextV7``: pre-norm RMSNorm, RoPE,
grouped-query attention (``n_heads`` query heads share ``n_kv_heads`` key/value heads), RMSNorm on
per-head queries and keys (QK-norm), a SwiGLU feed-forward, tied input/output embeddings, a
256-entry byte vocabulary.  Read top to bottom in the spirit of nanoGPT; the shape
(:class:`LMConfig`) lives in :mod:`netprism.lm.config` and the pieces shared with the other
LMs (RMSNorm, RoPE tables, GPT-2 init, input check) in :mod:`netprism.lm.layers`.

**KV-cache sharing.**  With ``kv_share = 3/8`` the stack splits 5:3 into two blocks.  Layers of
the second block have no key/value projections (the parameters do not exist, and only a query
norm); every one of them attends over the keys/values written by the *last layer of the first
block*.  Only first-block layers own a cache, so the cache holds ``n_kv_layers / n_layers`` of
the baseline's bytes (5/8).  Since second-block layers produce nothing later positions read,
prefill runs them only at the last prompt position (``forward(..., last_only=True)``, used by
:meth:`ByteLM.generate`).

Decoding is explicit: :class:`KVCache` preallocates ``(B, n_kv_heads, max_len, head_dim)`` keys and
values per cache-owning layer with a ``position`` counter, and a cached forward equals the full
forward pass; :class:`Int8KVCache` (``new_cache(B, kv_bits=8)``) keeps them in 8 bits (see
:mod:`netprism.lm.kv_cache`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netprism.lm.config import SHAPE_FIELDS, VOCAB_SIZE, LMConfig
from netprism.lm.kv_cache import Int8KVCache, KVCache
from netprism.lm.layers import (
    RMSNorm,
    apply_rope,
    check_idx,
    gpt2_init,
    register_rope,
    rope_tables,
)

__all__ = [
    "SHAPE_FIELDS",
    "VOCAB_SIZE",
    "Attention",
    "ByteLM",
    "Int8KVCache",
    "KVCache",
    "LMConfig",
    "Layer",
    "RMSNorm",
    "SwiGLU",
    "apply_rope",
    "rope_tables",
    "sample_next",
]


class Attention(nn.Module):
    """Grouped-query attention with QK-norm and RoPE; ``owns_kv=False`` drops K/V entirely."""

    def __init__(self, cfg: LMConfig, owns_kv: bool) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.hd = cfg.n_heads, cfg.n_kv_heads, cfg.hd
        self.owns_kv = owns_kv
        self.q = nn.Linear(cfg.d_model, cfg.n_heads * cfg.hd, bias=False)
        self.q_norm = RMSNorm(cfg.hd, cfg.norm_eps)
        if owns_kv:  # KV-sharing layers have no k, v, k_norm attributes at all
            self.k = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.hd, bias=False)
            self.v = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.hd, bias=False)
            self.k_norm = RMSNorm(cfg.hd, cfg.norm_eps)
        self.o = nn.Linear(cfg.n_heads * cfg.hd, cfg.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        shared: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: tuple[KVCache, int, int] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attend from ``x`` ``(B, Tq, C)`` at absolute positions ``pos`` ``(Tq,)``.

        A layer that owns K/V computes them for ``x``, writes them into ``cache`` (the cache,
        this layer's index in it, the write position) when given, and attends over all keys
        so far as the cache stores them; a sharing layer
        attends over ``shared``.  Returns the output ``(B, Tq, C)`` and the keys/values
        attended over, each ``(B, n_kv_heads, Tk, hd)``.
        """
        B, Tq, _ = x.shape
        cos, sin = rope[0][pos], rope[1][pos]  # (Tq, hd)
        q = self.q(x).view(B, Tq, self.n_heads, self.hd).transpose(1, 2)  # (B, nh, Tq, hd)
        q = apply_rope(self.q_norm(q), cos, sin)
        if self.owns_kv:
            k = self.k(x).view(B, Tq, self.n_kv_heads, self.hd).transpose(1, 2)  # (B, nkv, Tq, hd)
            v = self.v(x).view(B, Tq, self.n_kv_heads, self.hd).transpose(1, 2)
            k = apply_rope(self.k_norm(k), cos, sin)
            if cache is not None:
                store, layer, start = cache
                k, v = store.write(layer, k, v, start)  # (B, nkv, start + Tq, hd)
        else:
            if shared is None:
                raise RuntimeError("a KV-sharing layer needs the shared keys and values")
            k, v = shared
        Tk = k.shape[2]
        mask = torch.arange(Tk, device=x.device)[None, :] <= pos[:, None]  # (Tq, Tk) causal
        return self.attend(q, k, v, mask), (k, v)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Grouped-query attention of ``q`` ``(B, nh, Tq, hd)`` over ``k``, ``v``
        ``(B, nkv, Tk, hd)`` under the boolean ``mask`` ``(Tq, Tk)``, then the output
        projection: ``(B, Tq, C)``."""
        B, _, Tq, _ = q.shape
        rep = self.n_heads // self.n_kv_heads  # each K/V head serves `rep` query heads
        y = F.scaled_dot_product_attention(
            q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), attn_mask=mask
        )  # (B, nh, Tq, hd)
        return self.o(y.transpose(1, 2).reshape(B, Tq, self.n_heads * self.hd))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.ff, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.ff, bias=False)
        self.down = nn.Linear(cfg.ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Layer(nn.Module):
    """Pre-norm residual layer: attention then SwiGLU."""

    def __init__(self, cfg: LMConfig, owns_kv: bool) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, owns_kv)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        shared: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: tuple[KVCache, int, int] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.attn_norm(x), pos, rope, shared, cache)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), kv


class ByteLM(nn.Module):
    """The byte-level language model: ``(B, T)`` byte ids to ``(B, T, 256)`` next-byte logits.

    Examples
    --------
    >>> cfg = LMConfig(context=16, n_layers=8, d_model=16, n_heads=2, n_kv_heads=1, kv_share=3 / 8)
    >>> model = ByteLM(cfg)
    >>> idx = torch.randint(0, 256, (2, 5))
    >>> model(idx).shape
    torch.Size([2, 5, 256])
    >>> cache = model.new_cache(2)
    >>> bool(torch.allclose(model(idx, cache=cache), model(idx), atol=1e-5)), cache.position
    (True, 5)
    >>> base = ByteLM(LMConfig(context=16, n_layers=8, d_model=16, n_heads=2, n_kv_heads=1))
    >>> cache.nbytes() / base.new_cache(2).nbytes()
    0.625
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(
            Layer(config, owns_kv=i < config.n_kv_layers) for i in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        register_rope(self, config.context, config.hd, config.rope_theta)
        gpt2_init(self, config.n_layers)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(
        self, batch_size: int, max_len: int | None = None, *, kv_bits: int | None = None
    ) -> KVCache:
        """An empty cache on this model's device and dtype (``kv_bits=8``: :class:`Int8KVCache`)."""
        if kv_bits not in (None, 8):
            raise ValueError(f"kv_bits must be None (model dtype) or 8, got {kv_bits!r}")
        w = self.embed.weight
        kind = KVCache if kv_bits is None else Int8KVCache
        return kind(self.config, batch_size, max_len=max_len, dtype=w.dtype, device=w.device)

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, *, last_only: bool = False
    ) -> torch.Tensor:
        """Next-byte logits.

        Parameters
        ----------
        idx : Tensor (B, T) of integers in ``[0, 256)``
            With ``cache``, the bytes that follow the ``cache.position`` already cached.
        cache : KVCache, optional
            Read and written in place; ``position`` advances by ``T``.
        last_only : bool
            Return logits for the last position only, ``(B, 1, 256)``, and run KV-sharing
            layers only there (prefill skipping).

        Returns
        -------
        Tensor (B, T, 256), or (B, 1, 256) with ``last_only``
        """
        start = self._check_input(idx, cache)
        B, T = idx.shape
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        rope = (self.rope_cos, self.rope_sin)
        x = self.embed(idx.long())  # (B, T, C)
        shared: tuple[torch.Tensor, torch.Tensor] | None = None
        n_kv = self.config.n_kv_layers
        for i, layer in enumerate(self.layers):
            if i == n_kv and last_only:  # later layers feed no cache: only the last row matters
                x, pos = x[:, -1:], pos[-1:]
            layer_cache = None if cache is None or i >= n_kv else (cache, i, start)
            x, kv = layer(x, pos, rope, shared if i >= n_kv else None, layer_cache)
            if i == n_kv - 1:
                shared = kv  # (B, nkv, Tk, hd) from the last first-block layer
        if cache is not None:
            cache.position = start + T
        if last_only:
            x = x[:, -1:]
        return F.linear(self.norm(x), self.embed.weight)  # tied output embedding

    def _check_input(self, idx: torch.Tensor, cache: KVCache | None) -> int:
        check_idx(idx, self.config.context, self.config.vocab_size)
        B, T = idx.shape
        if cache is None:
            return 0
        if cache.batch_size != B:
            raise ValueError(f"cache holds batch size {cache.batch_size}, input has {B}")
        if cache.position + T > cache.max_len:
            raise ValueError(
                f"cache at position {cache.position} has room for {cache.max_len} bytes; "
                f"{T} more do not fit"
            )
        return cache.position

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        kv_bits: int | None = None,
    ) -> torch.Tensor:
        """Extend each prompt by ``max_new_tokens`` sampled bytes, decoding with a KV cache.

        Parameters
        ----------
        idx : Tensor (B, T0) of byte ids
            The prompts; ``T0 + max_new_tokens`` must fit in the context.
        max_new_tokens : int
        temperature : float
            ``0`` decodes greedily.
        top_k : int, optional
            Sample among the ``top_k`` most likely bytes.
        generator : torch.Generator, optional
            Source of randomness for sampling.
        kv_bits : int, optional
            ``8`` keeps the cache in int8 (:class:`Int8KVCache`).

        Returns
        -------
        LongTensor (B, T0 + max_new_tokens)
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be in [1, {self.config.vocab_size}], got {top_k!r}")
        self._check_input(idx, None)
        if idx.shape[1] + max_new_tokens > self.config.context:
            raise ValueError(
                f"prompt of {idx.shape[1]} bytes + {max_new_tokens} new bytes is longer than "
                f"the model's context of {self.config.context}"
            )
        cache = self.new_cache(idx.shape[0], kv_bits=kv_bits)
        out = [idx.long()]
        logits = self(idx, cache=cache, last_only=True)[:, -1]  # (B, V)
        for step in range(max_new_tokens):
            nxt = sample_next(logits, temperature=temperature, top_k=top_k, generator=generator)
            out.append(nxt)
            if step + 1 < max_new_tokens:
                logits = self(nxt, cache=cache)[:, -1]
        return torch.cat(out, dim=1)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one id per row from ``logits`` ``(B, V)``; returns ``(B, 1)`` on ``logits``' device
    (greedy at ``0``).

    A ``generator`` on another device than ``logits`` (a CPU generator with a CUDA model) draws
    on the generator's device, so a seeded CPU generator gives the same draws whatever device
    the model runs on (up to the model's own rounding differences).
    """
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).to(
            probs.device
        )
    return torch.multinomial(probs, 1, generator=generator)
