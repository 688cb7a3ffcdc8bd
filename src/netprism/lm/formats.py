"""Low-bit storage formats for the small LM: a Q2_K-style 2-bit block format (the PTQ baseline)
and 4-bit embeddings (the 8-bit KV cache is :class:`netprism.lm.kv_cache.Int8KVCache`).

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575): 2-bit
weights by QAT (:mod:`netprism.lm.quant`), 4-bit embeddings and an 8-bit KV cache; Q2_K follows
llama.cpp's block layout (blocks of 16, ``w = d q - m``, 4-bit block scales and mins, fp16 super
scales per 256).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from netprism.lm.quant import (
    _TINY,
    PackedWeight,
    _check_weight,
    pack_codes,
    row_scale,
    unpack_codes,
)
from netprism.nn.quant import quantize

# ---------------------------------------------------------------------------- Q2_K baseline

Q2K_BLOCK, Q2K_SUPER = 16, 256


@dataclass(frozen=True)
class Q2KWeight:
    """llama.cpp ``Q2_K``-style storage: ``w = (d * sc) * q - (dmin * mn)`` per block of 16.

    ``codes`` packs the ``q in {0..3}``; ``sub`` holds each block's 4-bit scale code ``sc``
    (low nibble) and min code ``mn`` (high nibble); ``d``/``dmin`` are fp16 per super-block of
    256.  84 bytes per 256 weights = 2.625 bits/weight (on the zero-padded length).
    """

    codes: torch.Tensor  # uint8 (N_pad / 4,)
    sub: torch.Tensor  # uint8 (N_pad / 16,)
    d: torch.Tensor  # float16 (N_pad / 256,)
    dmin: torch.Tensor  # float16 (N_pad / 256,)
    shape: tuple[int, ...]

    def dequantize(self) -> torch.Tensor:
        n_pad = self.sub.numel() * Q2K_BLOCK
        q = unpack_codes(self.codes, n_pad).float().view(-1, Q2K_BLOCK)  # (NB, 16)
        sc, mn = (self.sub & 15).float(), (self.sub >> 4).float()  # (NB,)
        step = (self.d.float()[:, None] * sc.view(-1, 16)).reshape(-1, 1)  # (NB, 1)
        low = (self.dmin.float()[:, None] * mn.view(-1, 16)).reshape(-1, 1)
        n = int(torch.Size(self.shape).numel())
        return (step * q - low).reshape(-1)[:n].reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (self.codes, self.sub, self.d, self.dmin))

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.nbytes / int(torch.Size(self.shape).numel())


def q2k_quantize(w: torch.Tensor) -> Q2KWeight:
    """Quantize ``w`` (any shape, flattened, zero-padded to a multiple of 256) Q2_K-style.

    >>> q = q2k_quantize(torch.randn(4, 128))
    >>> q.bits_per_weight, q.dequantize().shape
    (2.625, torch.Size([4, 128]))
    """
    _check_weight(w)
    flat = w.detach().float().reshape(-1)
    flat = torch.cat([flat, flat.new_zeros((-flat.numel()) % Q2K_SUPER)])
    blocks = flat.view(-1, Q2K_BLOCK)  # (NB, 16)
    low = (-blocks.amin(1)).clamp_min(0.0).view(-1, 16)  # (NS, 16) mins, as m >= 0
    step = ((blocks.amax(1) + low.view(-1)) / 3).view(-1, 16)  # (NS, 16)
    d = (step.amax(1) / 15).half()  # (NS,)
    dmin = (low.amax(1) / 15).half()
    sc = torch.round(step / d.float().clamp_min(_TINY)[:, None]).clamp(0, 15)
    mn = torch.round(low / dmin.float().clamp_min(_TINY)[:, None]).clamp(0, 15)
    step_hat = (d.float()[:, None] * sc).reshape(-1, 1)  # (NB, 1)
    low_hat = (dmin.float()[:, None] * mn).reshape(-1, 1)
    q = torch.round((blocks + low_hat) / step_hat.clamp_min(_TINY)).clamp(0, 3).to(torch.uint8)
    sub = (sc.reshape(-1) + 16 * mn.reshape(-1)).to(torch.uint8)
    return Q2KWeight(pack_codes(q), sub, d, dmin, tuple(w.shape))


# ---------------------------------------------------------------------------- 4-bit embeddings


def quantize_embedding_4bit(weight: torch.Tensor) -> PackedWeight:
    """Symmetric 4-bit per-row quantization of an embedding table ``(V, C)``, packed 2 per byte.

    Codes are ``q + 8`` for ``q in [-7, 7]``; ``|w - dequantize()| <= scale / 2`` elementwise,
    and ``dequantize()`` equals :class:`RowFakeQuant` ``(4)`` of the table bit for bit.

    >>> p = quantize_embedding_4bit(torch.randn(256, 16))
    >>> p.packed.numel(), p.scale.shape
    (2048, torch.Size([256, 1]))
    """
    _check_weight(weight, "weight", 2)
    if weight.ndim != 2:
        raise ValueError(f"weight must be (V, C), got shape {tuple(weight.shape)}")
    w = weight.detach()
    s = row_scale(w, 7)  # (V, 1)
    codes = quantize(w, 4, scale=s, signed=False).codes  # uint8, q + 8
    return PackedWeight(pack_codes(codes, 4), s, tuple(w.shape), 4, 8.0)
