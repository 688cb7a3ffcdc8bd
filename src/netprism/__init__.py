"""netprism: how neural networks use their data and their space.

Two lenses -- per-sample loss curvature and streaming subspace analysis -- and the
research methods built on them.  See ``docs/architecture.md`` in the repository for the
layout.  ``netprism.create_model`` and ``netprism.list_models`` first import the method areas
that register architectures (``netprism.models.MODEL_AREAS``: ``hybrid_net``, ``spiking_mlp``,
the byte LMs), so they know every model; ``netprism.models.create_model`` knows those once their
area is imported.

Example
-------
>>> import netprism as npm
>>> ds = npm.load_dataset("synthetic", n=64, seed=0)
>>> model = npm.create_model("mlp", input_shape=ds.input_shape, num_classes=ds.num_classes)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from netprism.version import __version__

if TYPE_CHECKING:  # what type checkers see; at run time the names load on first use
    from netprism.data import image_files, list_datasets, load_dataset
    from netprism.models import create_model, list_models
    from netprism.train import BatchKeys, Callback, TrainConfig, evaluate, fit

# Public names -> the submodule that defines them; imported lazily so `netprism --help`
# and `import netprism.core` stay fast.
_LAZY = {
    "load_dataset": "netprism.data",
    "list_datasets": "netprism.data",
    "image_files": "netprism.data",
    "create_model": "netprism.models",
    "list_models": "netprism.models",
    "fit": "netprism.train",
    "evaluate": "netprism.train",
    "TrainConfig": "netprism.train",
    "Callback": "netprism.train",
    "BatchKeys": "netprism.train",
}


# The facade's model names also see the architectures that method areas register on import.
_NEEDS_MODEL_AREAS = ("create_model", "list_models")


def __getattr__(name: str) -> Any:
    if name in _NEEDS_MODEL_AREAS:
        from netprism.models import MODEL_AREAS

        for area in MODEL_AREAS:
            importlib.import_module(area)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'netprism' has no attribute {name!r}")


__all__ = [
    "__version__",
    "load_dataset",
    "list_datasets",
    "image_files",
    "create_model",
    "list_models",
    "fit",
    "evaluate",
    "TrainConfig",
    "Callback",
    "BatchKeys",
]
