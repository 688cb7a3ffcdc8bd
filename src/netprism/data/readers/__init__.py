"""Readers of the user's own data in standard on-disk formats (no downloads, no writes).

Importing this package registers ``mnist``, ``fashion_mnist``, ``kmnist`` (IDX files),
``cifar10``, ``cifar100`` (python pickles or binary batches) and ``imagefolder`` in
:data:`netprism.data.registry.DATASETS`; load them with
``load_dataset(name, split=..., data_dir=...)``.
"""

from netprism.data.readers.cifar import (
    RestrictedUnpickler,
    UnsafePickleError,
    load_pickle,
    read_binary_batch,
    read_pickle_batch,
)
from netprism.data.readers.idx import read_idx
from netprism.data.readers.imagefolder import holdout_mask, load_images

__all__ = [
    "RestrictedUnpickler",
    "UnsafePickleError",
    "holdout_mask",
    "load_images",
    "load_pickle",
    "read_binary_batch",
    "read_idx",
    "read_pickle_batch",
]
