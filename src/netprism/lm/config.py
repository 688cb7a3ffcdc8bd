"""The shape of the byte LM (:class:`LMConfig`), shared by the model and its KV caches.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575); layer
shapes follow Apple's ``tamm`` reference config ``AFMTextV7``.  A module of its own so that
:mod:`netprism.lm.model` and :mod:`netprism.lm.kv_cache` both import it and not each other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

VOCAB_SIZE = 256
SHAPE_FIELDS: tuple[str, ...] = ("context", "n_layers", "d_model", "n_heads", "n_kv_heads")
SHAPE_FIELDS += ("head_dim", "d_ff", "rope_theta", "norm_eps", "vocab_size")  # variants share


@dataclass(frozen=True)
class LMConfig:
    """Shape of a :class:`ByteLM` (stored beside its weights).

    ``head_dim`` defaults to ``d_model // n_heads`` and ``d_ff`` to ``3.25 * d_model`` rounded
    up to a multiple of 8 (AFM's ratio).  ``kv_share`` is the fraction of layers, counted from
    the top, that reuse the K/V of the last cache-owning layer (``3/8`` for AFM's 5:3 split);
    ``round(kv_share * n_layers)`` layers share.
    """

    context: int = 256
    n_layers: int = 8
    d_model: int = 128
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int | None = None
    d_ff: int | None = None
    kv_share: float = 0.0
    rope_theta: float = 10_000.0  # AFM uses 5e5 for 4K+ contexts; 1e4 suits ours of ~256
    norm_eps: float = 1e-5
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self) -> None:
        for name in ("context", "n_layers", "d_model", "n_heads", "n_kv_heads", "vocab_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.hd % 2 or self.hd < 2:
            raise ValueError(f"head_dim must be an even int >= 2 (for RoPE), got {self.hd}")
        if not 0 <= self.kv_share < 1:
            raise ValueError(f"kv_share must be in [0, 1), got {self.kv_share!r}")
        if self.n_kv_layers < 1:
            raise ValueError(
                f"kv_share={self.kv_share} leaves no cache-owning layer of {self.n_layers}"
            )

    @property
    def hd(self) -> int:
        """Head dimension."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def ff(self) -> int:
        """SwiGLU inner width."""
        return self.d_ff if self.d_ff is not None else 8 * math.ceil(3.25 * self.d_model / 8)

    @property
    def n_kv_layers(self) -> int:
        """Layers that own K/V projections and a cache (the first block)."""
        return self.n_layers - round(self.kv_share * self.n_layers)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
