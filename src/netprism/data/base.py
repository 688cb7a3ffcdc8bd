"""The one dataset type netprism returns: a plain torch ``Dataset`` over tensors + metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from netprism.core.validation import check_finite, check_labels, check_nonempty


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata travelling with a dataset.

    Attributes
    ----------
    name : str
        Registry name ("digits", "mnist", ...) or a description of a derived set.
    classes : tuple of str
        Class names; ``K = len(classes)``.
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 8, 8)`` or ``(40,)``.
    source : str
        Where the samples came from (package, file path, generator and seed).
    extra : dict
        Anything else (e.g. CIFAR-100 coarse class names).
    """

    name: str
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


class TensorDataset(Dataset):
    """Inputs ``x`` of shape ``(N, *input_shape)`` (float32) and labels ``y`` of shape ``(N,)``.

    Indexing returns ``(x[i], y[i])`` so it drops into any ``DataLoader``.  Validation happens
    here, once: finite inputs, integer labels in ``[0, K)``, at least one sample.

    Examples
    --------
    >>> ds = TensorDataset(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]),
    ...                    DatasetInfo("toy", ("a", "b"), (2,), "example"))
    >>> len(ds), ds.num_classes
    (4, 2)
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        info: DatasetInfo,
        extras: dict[str, torch.Tensor] | None = None,
    ) -> None:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(f"x and y must be tensors, got {type(x).__name__}, {type(y).__name__}")
        check_nonempty(len(x), f"dataset {info.name!r}")
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
        if tuple(x.shape[1:]) != tuple(info.input_shape):
            raise ValueError(
                f"inputs of {info.name!r} must have shape (N, *{info.input_shape}), "
                f"got {tuple(x.shape)}"
            )
        self.x = check_finite(x.float(), f"inputs of {info.name!r}")
        self.y = check_labels(y.long(), len(info.classes), f"labels of {info.name!r}")
        self.info = info
        # Per-sample side tensors (e.g. coarse labels, group ids), each of length N.
        self.extras = dict(extras or {})
        for key, value in self.extras.items():
            if len(value) != len(y):
                raise ValueError(f"extra {key!r} must have length {len(y)}, got {len(value)}")

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    @property
    def num_classes(self) -> int:
        return len(self.info.classes)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def name(self) -> str:
        return self.info.name

    def subset(self, index: Sequence[int] | torch.Tensor, name: str | None = None) -> TensorDataset:
        """A new dataset holding the rows ``index`` (metadata and extras carried along)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        info = self.info if name is None else _renamed(self.info, name)
        extras = {k: v[idx] for k, v in self.extras.items()}
        return TensorDataset(self.x[idx], self.y[idx], info, extras)

    def with_tensors(
        self,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        name: str | None = None,
        **extras: torch.Tensor,
    ) -> TensorDataset:
        """A copy with inputs and/or labels replaced (validated again)."""
        info = self.info if name is None else _renamed(self.info, name)
        new_x = self.x if x is None else x
        info = _reshaped(info, tuple(new_x.shape[1:]))
        merged = {**self.extras, **extras}
        return TensorDataset(new_x, self.y if y is None else y, info, merged)

    def __repr__(self) -> str:
        return (
            f"TensorDataset(name={self.name!r}, N={len(self)}, K={self.num_classes}, "
            f"input_shape={self.input_shape}, source={self.info.source!r})"
        )


def _renamed(info: DatasetInfo, name: str) -> DatasetInfo:
    return DatasetInfo(name, info.classes, info.input_shape, info.source, dict(info.extra))


def _reshaped(info: DatasetInfo, shape: tuple[int, ...]) -> DatasetInfo:
    return DatasetInfo(info.name, info.classes, shape, info.source, dict(info.extra))


def tensor_pair(data: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x, y)`` when ``data`` already holds them in memory -- a :class:`TensorDataset`, an
    ``(x, y)`` tuple of tensors or a ``torch.utils.data.TensorDataset`` of two tensors --
    else ``None``."""
    if isinstance(data, TensorDataset):
        return data.x, data.y
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        return data[0], data[1]
    if isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    return None


def as_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x, y)`` from a :class:`TensorDataset`, a ``(x, y)`` pair, or any map-style
    ``Dataset`` / ``DataLoader`` yielding ``(x, y)`` or ``(x, y, index)`` items (stacked;
    meant for small sets).

    A ``DataLoader`` over a map-style dataset is read through its dataset in index order, not
    in the (possibly shuffled) order the loader yields, so row ``i`` is sample ``i``.
    """
    pair = tensor_pair(data)
    if pair is not None:
        return pair
    if isinstance(data, torch.utils.data.DataLoader):
        if not isinstance(data.dataset, torch.utils.data.IterableDataset):
            return as_tensors(data.dataset)
        xs, ys = zip(*[(b[0], b[1]) for b in data])
        return torch.cat(xs), torch.cat(ys)
    if isinstance(data, Dataset):
        n = len(data)  # type: ignore[arg-type]
        check_nonempty(n)
        xs, ys = zip(*[data[i][:2] for i in range(n)])
        return torch.stack([torch.as_tensor(v) for v in xs]), torch.as_tensor(ys)
    raise TypeError(f"expected a Dataset, DataLoader or (x, y) tensors, got {type(data).__name__}")
