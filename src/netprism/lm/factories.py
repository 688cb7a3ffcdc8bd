"""The byte LMs in the model registry: ``create_model("byte_lm", input_shape=(T,), num_classes=V)``.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575).  Each
factory follows the registry's keyword contract (:mod:`netprism.models.registry`): the sample
shape ``input_shape=(context,)`` gives the context length ``T`` and ``num_classes`` the
vocabulary size ``V`` (256 for bytes); every other field of the model's config is a keyword.
The models map ``(B, T)`` integer ids to ``(B, T, V)`` next-token logits, so they are
registered with ``task="language_model"`` (classifier-only checks can skip them by that tag).
Registration happens when :mod:`netprism.lm` is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netprism.lm.config import LMConfig
from netprism.lm.local_global import LocalGlobalConfig, LocalGlobalLM
from netprism.lm.model import ByteLM
from netprism.lm.parallel_track import ParallelTrackLM, PTConfig
from netprism.models import register_model

__all__ = ["byte_lm", "local_global_lm", "parallel_track_lm"]

TASK = "language_model"


def _context_vocab(input_shape: Sequence[int], num_classes: int, model: str) -> tuple[int, int]:
    """``(context, vocab_size)`` from the registry's keywords, or ``ValueError`` naming them."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"{model}: num_classes (the vocabulary size) must be an int >= 2, got {num_classes!r}"
        )
    shape = tuple(input_shape)
    if len(shape) != 1 or not isinstance(shape[0], int) or shape[0] < 1:
        raise ValueError(
            f"{model} expects input_shape (context,): one positive int, the sequence length; "
            f"got {shape!r}"
        )
    return shape[0], num_classes


@register_model("byte_lm", task=TASK)
def byte_lm(*, input_shape: Sequence[int], num_classes: int = 256, **config: Any) -> ByteLM:
    """A :class:`~netprism.lm.model.ByteLM` of context ``input_shape[0]`` and vocabulary
    ``num_classes``; ``config`` holds the other :class:`~netprism.lm.config.LMConfig` fields.

    >>> model = byte_lm(input_shape=(16,), num_classes=256, n_layers=2, d_model=16)
    >>> model(__import__("torch").zeros(2, 16, dtype=__import__("torch").long)).shape
    torch.Size([2, 16, 256])
    """
    context, vocab = _context_vocab(input_shape, num_classes, "byte_lm")
    return ByteLM(LMConfig(context=context, vocab_size=vocab, **config))


@register_model("local_global_lm", task=TASK)
def local_global_lm(
    *, input_shape: Sequence[int], num_classes: int = 256, **config: Any
) -> LocalGlobalLM:
    """A :class:`~netprism.lm.local_global.LocalGlobalLM` of context ``input_shape[0]`` and
    vocabulary ``num_classes``; ``config`` holds the other
    :class:`~netprism.lm.local_global.LocalGlobalConfig` fields (``window``, ...)."""
    context, vocab = _context_vocab(input_shape, num_classes, "local_global_lm")
    return LocalGlobalLM(LocalGlobalConfig(context=context, vocab_size=vocab, **config))


@register_model("parallel_track_lm", task=TASK)
def parallel_track_lm(
    *, input_shape: Sequence[int], num_classes: int = 256, **config: Any
) -> ParallelTrackLM:
    """A :class:`~netprism.lm.parallel_track.ParallelTrackLM` (PT, MoE by default) of context
    ``input_shape[0]`` and vocabulary ``num_classes``; ``config`` holds the other
    :class:`~netprism.lm.parallel_track.PTConfig` fields (``n_tracks``, ``moe``, ...)."""
    context, vocab = _context_vocab(input_shape, num_classes, "parallel_track_lm")
    return ParallelTrackLM(PTConfig(context=context, vocab_size=vocab, **config))
