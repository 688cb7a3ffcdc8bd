"""The model registry: ``create_model(name, input_shape=..., num_classes=..., **kwargs)``.

Every factory takes keyword-only ``input_shape`` (one sample's shape, e.g. ``(1, 8, 8)``,
``(3, 32, 32)`` or ``(40,)``) and ``num_classes``, plus its own knobs.

The generic architectures live in this package; the architectures of a method area register
themselves with :func:`register_model` when that area is imported (the areas import
``netprism.models``, never the reverse).  :data:`MODEL_AREAS` names those areas;
``netprism.create_model`` and ``netprism.list_models`` import them before answering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from netprism.core.registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")

# Areas whose import registers more models (hybrid_net; byte_lm, local_global_lm; spiking_mlp).
MODEL_AREAS = ("netprism.compression", "netprism.lm", "netprism.spiking")


def register_model(name: str, **meta: Any) -> Callable[[ModelFactory], ModelFactory]:
    """Register a model factory.  ``meta`` may carry e.g. ``image_only=True``."""
    return MODELS.register(name, **meta)


def create_model(
    name: str, *, input_shape: Sequence[int], num_classes: int, **kwargs: Any
) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    input_shape : sequence of int
        Shape of one input sample without the batch dimension.
    num_classes : int
        Number of output logits ``K``.

    Examples
    --------
    >>> m = create_model("mlp", input_shape=(1, 8, 8), num_classes=10)
    >>> m(__import__("torch").zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    try:
        factory = MODELS.get(name)
    except KeyError as err:
        raise KeyError(
            f"{err.args[0]}; more models register when their area is imported: "
            f"{', '.join(MODEL_AREAS)} (netprism.create_model imports them all)"
        ) from None
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive ints, got {tuple(input_shape)!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return factory(input_shape=shape, num_classes=num_classes, **kwargs)


def check_image_shape(input_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    """Return ``(C, H, W)`` or raise ``ValueError`` naming the shape and what was expected."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(
            f"{model} expects an image input_shape (C, H, W) of positive ints, "
            f"got {shape!r}; use 'mlp' for 1-D or flat inputs"
        )
    return shape[0], shape[1], shape[2]


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return MODELS.names()
