"""Where samples come from: embedded sets, readers of standard formats, and transforms."""

from netprism.data import continuous_tone as _continuous_tone  # noqa: F401  (registers)
from netprism.data import embedded as _embedded  # noqa: F401  (registers embedded sets)
from netprism.data import hierarchical as _hierarchical  # noqa: F401  (registers "hierarchical")
from netprism.data import readers as _readers  # noqa: F401  (registers on-disk formats)
from netprism.data.base import (
    DatasetInfo,
    TensorDataset,
    as_dataset,
    as_datasets,
    as_tensors,
    labels_of,
)
from netprism.data.ood import gaussian_noise, held_out_classes, uniform_noise
from netprism.data.readers.image_files import ImageFiles
from netprism.data.readers.imagefolder import image_files
from netprism.data.readers.limits import DataBudgetError
from netprism.data.registry import DATASETS, list_datasets, load_dataset
from netprism.data.transforms import (
    partition_clients,
    permuted_tasks,
    split_tasks,
    with_conflicting_duplicates,
    with_label_noise,
)

__all__ = [
    "DATASETS",
    "DataBudgetError",
    "DatasetInfo",
    "ImageFiles",
    "TensorDataset",
    "as_dataset",
    "as_datasets",
    "as_tensors",
    "gaussian_noise",
    "held_out_classes",
    "image_files",
    "labels_of",
    "list_datasets",
    "load_dataset",
    "partition_clients",
    "permuted_tasks",
    "split_tasks",
    "uniform_noise",
    "with_conflicting_duplicates",
    "with_label_noise",
]
