"""Architectures by name through one registry."""

from netprism.models import alexnet, lenet, mlp, resnet, vgg, vit  # noqa: F401  (register entries)
from netprism.models.registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
