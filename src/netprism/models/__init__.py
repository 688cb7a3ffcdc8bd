"""Architectures by name through one registry.

The method areas named in ``MODEL_AREAS`` register their own architectures when imported;
``netprism.create_model`` / ``netprism.list_models`` import them first."""

from netprism.models import alexnet, lenet, mlp, resnet, vgg, vit  # noqa: F401  (register entries)
from netprism.models.registry import (
    MODEL_AREAS,
    MODELS,
    create_model,
    list_models,
    register_model,
)

__all__ = ["MODELS", "MODEL_AREAS", "create_model", "list_models", "register_model"]
