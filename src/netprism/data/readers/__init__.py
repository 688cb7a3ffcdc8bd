"""Readers of the user's own data in standard on-disk formats (no downloads, no writes).

Importing this package registers ``mnist``, ``fashion_mnist``, ``kmnist`` (IDX files),
``cifar10``, ``cifar100`` (python pickles or binary batches) and ``imagefolder`` in
:data:`netprism.data.registry.DATASETS`; load them with
``load_dataset(name, split=..., data_dir=...)``.  :func:`image_files` reads an image folder
lazily (each image decoded when read) for folders larger than memory.

Every reader takes ``max_bytes=N``, the memory it may use, checked on the files' headers before
anything is read, inflated or allocated (default ``$NETPRISM_MAX_DATA_BYTES`` or
:data:`DEFAULT_MAX_BYTES`, 4 GiB); going over raises :class:`DataBudgetError` (a ``ValueError``)
naming the file and the budget.
"""

from netprism.data.readers.cifar import read_binary_batch, read_pickle_batch
from netprism.data.readers.idx import read_idx
from netprism.data.readers.image_files import ImageFiles
from netprism.data.readers.imagefolder import holdout_mask, image_files, load_images
from netprism.data.readers.limits import DEFAULT_MAX_BYTES, DataBudgetError
from netprism.data.readers.safe_pickle import RestrictedUnpickler, UnsafePickleError, load_pickle

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DataBudgetError",
    "ImageFiles",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "holdout_mask",
    "image_files",
    "load_images",
    "load_pickle",
    "read_binary_batch",
    "read_idx",
    "read_pickle_batch",
]
