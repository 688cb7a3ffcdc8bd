"""Key/value caches of :class:`~netprism.lm.model.ByteLM`: at the model's dtype, or 8-bit.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575): the
on-device model keeps its KV cache in 8 bits.  :class:`Int8KVCache` stores every written key and
value vector as int8 codes with one float32 scale per (token, KV head) -- ``max|x| / 127`` over
the head dimension -- so a token's codes never depend on later tokens: prefilling a prompt in
one pass and decoding it byte by byte give the same cache.  Attention reads the dequantized
prefix.  Bytes per cached vector: ``head_dim + 4`` instead of ``4 * head_dim`` (fp32).
"""

from __future__ import annotations

import torch

from netprism.lm.config import LMConfig
from netprism.nn.quant import dequantize, quantize


class KVCache:
    """Preallocated keys and values for the cache-owning layers, and the next write position.

    ``k[i]`` and ``v[i]`` have shape ``(B, n_kv_heads, max_len, head_dim)`` for each of the
    ``n_kv_layers`` layers that own K/V; KV-sharing layers hold nothing.  The model writes the
    new tokens at ``position`` (:meth:`write`) and advances it after a forward pass.
    """

    def __init__(
        self,
        config: LMConfig,
        batch_size: int,
        *,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        max_len = config.context if max_len is None else max_len
        if not isinstance(max_len, int) or not 1 <= max_len <= config.context:
            raise ValueError(f"max_len must be an int in [1, {config.context}], got {max_len!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.shape = (batch_size, config.n_kv_heads, max_len, config.hd)
        self.k, self.v = self._alloc(config.n_kv_layers, dtype, device)
        self.batch_size = batch_size
        self.max_len = max_len
        self.position = 0

    def _alloc(
        self, n: int, dtype: torch.dtype, device: torch.device | str
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        def zeros() -> list[torch.Tensor]:
            return [torch.zeros(self.shape, dtype=dtype, device=device) for _ in range(n)]

        return zeros(), zeros()

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` ``(B, n_kv_heads, Tq, hd)`` of ``layer`` at ``[start, start + Tq)``
        and return the layer's keys and values ``[0, start + Tq)`` as attention reads them."""
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def _tensors(self) -> list[torch.Tensor]:
        return self.k + self.v

    def nbytes(self) -> int:
        """Bytes allocated by the real cache tensors."""
        return sum(t.nbytes for t in self._tensors())

    def used_nbytes(self) -> int:
        """Bytes of the filled prefix ``[:position]`` of the real cache tensors."""
        return sum(t[:, :, : self.position].nbytes for t in self._tensors())

    def reset(self) -> None:
        self.position = 0


class Int8KVCache(KVCache):
    """A :class:`KVCache` holding int8 codes plus a float32 scale per (token, KV head).

    ``k[i]``, ``v[i]`` are int8 ``(B, n_kv_heads, max_len, head_dim)``; ``k_scale[i]``,
    ``v_scale[i]`` are float32 ``(B, n_kv_heads, max_len, 1)``.  A stored vector ``x`` reads back
    as ``codes * scale`` with ``|x - codes * scale| <= scale / 2`` elementwise.
    """

    def _alloc(
        self, n: int, dtype: torch.dtype, device: torch.device | str
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        self.out_dtype = dtype
        scale_shape = (*self.shape[:3], 1)
        self.k_scale = [torch.zeros(scale_shape, device=device) for _ in range(n)]
        self.v_scale = [torch.zeros(scale_shape, device=device) for _ in range(n)]
        return super()._alloc(n, torch.int8, device)

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.shape[2]
        out = []
        for codes, scales, x in ((self.k, self.k_scale, k), (self.v, self.v_scale, v)):
            q, s = quantize_per_vector(x)
            codes[layer][:, :, start:end] = q
            scales[layer][:, :, start:end] = s
            deq = dequantize(codes[layer][:, :, :end], scales[layer][:, :, :end])
            out.append(deq.to(self.out_dtype))
        return out[0], out[1]

    def _tensors(self) -> list[torch.Tensor]:
        return self.k + self.v + self.k_scale + self.v_scale


def quantize_per_vector(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of ``x`` ``(..., hd)`` with one scale per vector ``(..., 1)``.

    >>> x = torch.tensor([[1.0, -0.5, 0.25]])
    >>> q, s = quantize_per_vector(x)
    >>> q.tolist(), round(float(s) * 127, 6)
    ([[127, -64, 32]], 1.0)
    """
    x = x.detach().float()
    codes, scale, _ = quantize(x, 8, axis=tuple(range(x.ndim - 1)))  # one scale per vector
    return codes, scale
