"""The one dataset type netprism returns: a plain torch ``Dataset`` over tensors + metadata."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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


class InfoProperties:
    """``num_classes``, ``classes``, ``input_shape`` and ``name`` read from ``self.info``."""

    info: DatasetInfo

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


class TensorDataset(InfoProperties, Dataset):
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
        self.y = check_labels(y, len(info.classes), f"labels of {info.name!r}").long()
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


def labels_of(data: Any) -> torch.Tensor:
    """The labels ``(N,)`` of ``data`` in index order, without reading the inputs when it can.

    Read from an in-memory pair (see :func:`tensor_pair`), a ``labels`` or ``targets``
    attribute holding one label per sample (netprism's lazy image folders, torchvision-style
    datasets), or else item by item (each item's second entry).  A ``DataLoader`` is read
    through its map-style dataset.
    """
    pair = tensor_pair(data)
    if pair is not None:
        return pair[1]
    if isinstance(data, torch.utils.data.DataLoader) and not isinstance(
        data.dataset, torch.utils.data.IterableDataset
    ):
        return labels_of(data.dataset)
    for attribute in ("labels", "targets"):
        stored = getattr(data, attribute, None)
        if isinstance(stored, (torch.Tensor, np.ndarray, list, tuple)) and len(stored) == len(data):
            return torch.as_tensor(stored)
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        n = len(data)  # type: ignore[arg-type]
        check_nonempty(n)
        return torch.as_tensor([int(data[i][1]) for i in range(n)])  # inputs dropped at once
    return as_tensors(data)[1]


def as_dataset(
    data: Any,
    *,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    name: str | None = None,
) -> TensorDataset:
    """``data`` as a netprism :class:`TensorDataset`, inferring the metadata it lacks.

    Every netprism function that takes a dataset accepts what this function accepts.

    Parameters
    ----------
    data : TensorDataset, torch.utils.data.TensorDataset, (x, y) pair, Dataset or DataLoader
        A netprism :class:`TensorDataset` is returned as it is.  Anything else is read into
        memory: a ``torch.utils.data.TensorDataset(x, y)``, a tuple ``(x, y)`` of tensors or
        numpy arrays, or any map-style ``Dataset`` (or ``DataLoader``) whose items are
        ``(x, y)`` or ``(x, y, index)``, stacked by :func:`as_tensors` (meant for small sets).
        ``x`` has shape ``(N, *input_shape)``, ``y`` holds class indices, shape ``(N,)``.
    num_classes : int, optional
        The number of classes ``K``.  Default: ``int(y.max()) + 1`` for integer labels.  Taken
        from the labels *present*, it is too low when the highest classes are absent (a subset,
        one task of a stream, a tiny sample): pass it then.  Required for float labels, which
        must hold whole numbers.  For a netprism dataset it must equal ``data.num_classes``.
    input_shape : sequence of int, optional
        Shape of one input; default ``x.shape[1:]``.  A shape with the same number of values
        reshapes ``x`` (e.g. flat ``(N, 64)`` to ``(1, 8, 8)``).  For a netprism dataset it
        must equal ``data.input_shape``.
    name : str, optional
        Name of the new dataset; default ``"tensors"`` for an ``(x, y)`` pair, else the type of
        ``data``.

    Returns
    -------
    TensorDataset
        Inputs float32 ``(N, *input_shape)``, labels int64 ``(N,)``, classes named
        ``"0" .. "K-1"``.

    Raises
    ------
    ValueError
        Empty data, labels that are not 1-D, float labels without ``num_classes`` (or not whole
        numbers), labels outside ``[0, num_classes)``, or an ``input_shape`` that does not fit.
    TypeError
        ``data`` is none of the accepted types.

    Examples
    --------
    >>> ds = as_dataset((torch.zeros(4, 3), torch.tensor([0, 2, 1, 2])))
    >>> ds.num_classes, ds.input_shape, ds.classes
    (3, (3,), ('0', '1', '2'))
    >>> as_dataset((torch.zeros(4, 3), torch.tensor([0, 2, 1, 2])), num_classes=10).num_classes
    10
    >>> as_dataset((torch.zeros(2, 3), torch.tensor([0.0, 1.0])))
    Traceback (most recent call last):
    ...
    ValueError: cannot infer num_classes of 'tensors' from float labels (dtype torch.float32): \
pass num_classes=K (the labels must be whole numbers 0 .. K-1)
    """
    if isinstance(data, TensorDataset):
        return _checked_netprism(data, num_classes, input_shape)
    label = name or ("tensors" if isinstance(data, tuple) else type(data).__name__)
    x, y = _read_pair(data)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"{label!r} is empty: no sample to infer input_shape and num_classes from, and a "
            "netprism dataset needs at least one sample"
        )
    y = _class_labels(y, label, num_classes)
    k = int(y.max()) + 1 if num_classes is None else num_classes
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    x = _reshaped_inputs(x, input_shape, label)
    classes = tuple(str(c) for c in range(k))
    info = DatasetInfo(label, classes, tuple(x.shape[1:]), f"in-memory {type(data).__name__}")
    return TensorDataset(x, y, info)


def as_datasets(
    items: Sequence[Any],
    *,
    num_classes: int | None = None,
    names: Sequence[str | None] | None = None,
) -> list[TensorDataset]:
    """Several datasets that share one label space (a stream's tasks, a train / test pair).

    Each item is converted by :func:`as_dataset`.  Items that are not netprism datasets get
    ``num_classes`` classes; by default the largest count over all items (netprism ones
    included), so that a set missing the top classes still matches the others.

    Parameters
    ----------
    items : sequence of dataset inputs
        Anything :func:`as_dataset` accepts.
    num_classes : int, optional
        For the items that are not netprism datasets.
    names : sequence of str or None, optional
        One name per item (``None``: :func:`as_dataset`'s default).

    Returns
    -------
    list of TensorDataset

    Examples
    --------
    >>> x = torch.zeros(3, 2)
    >>> [d.num_classes for d in as_datasets([(x, torch.tensor([0, 1, 1])), (x, torch.zeros(3))],
    ...                                     num_classes=4)]
    [4, 4]
    >>> [d.num_classes for d in as_datasets([(x, torch.tensor([0, 1, 1])),
    ...                                      (x, torch.tensor([0, 2, 0]))])]
    [3, 3]
    """
    given = [None] * len(items) if names is None else list(names)
    if len(given) != len(items):
        raise ValueError(f"names must have one entry per item ({len(items)}), got {len(given)}")
    own = [isinstance(d, TensorDataset) for d in items]
    out = [
        as_dataset(d, num_classes=None if o else num_classes, name=n)
        for d, o, n in zip(items, own, given)
    ]
    if num_classes is not None or all(own):
        return out
    k = max(d.num_classes for d in out)
    return [d if o else _with_classes(d, k) for d, o in zip(out, own)]


def _with_classes(data: TensorDataset, k: int) -> TensorDataset:
    """``data`` with the classes ``"0" .. "k-1"`` (``k`` >= its largest label + 1)."""
    if data.num_classes == k:
        return data
    info = DatasetInfo(
        data.name, tuple(str(c) for c in range(k)), data.input_shape, data.info.source
    )
    return TensorDataset(data.x, data.y, info, data.extras)


def _checked_netprism(
    data: TensorDataset, num_classes: int | None, input_shape: Sequence[int] | None
) -> TensorDataset:
    if num_classes is not None and num_classes != data.num_classes:
        raise ValueError(
            f"num_classes={num_classes!r} contradicts dataset {data.name!r}, which has "
            f"{data.num_classes} classes; leave num_classes out for a netprism dataset"
        )
    if input_shape is not None and tuple(input_shape) != data.input_shape:
        raise ValueError(
            f"input_shape={tuple(input_shape)} contradicts dataset {data.name!r}, whose inputs "
            f"have shape {data.input_shape}"
        )
    return data


def _read_pair(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors of a pair of tensors / arrays or of :func:`as_tensors`'s inputs."""
    arrays = (torch.Tensor, np.ndarray)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(v, arrays) for v in data):
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    try:
        return as_tensors(data)
    except TypeError:
        raise TypeError(
            "expected a netprism TensorDataset, a torch TensorDataset(x, y), an (x, y) tuple of "
            f"tensors or arrays, or a Dataset / DataLoader of (x, y) items, got "
            f"{type(data).__name__}"
        ) from None


def _class_labels(y: torch.Tensor, label: str, num_classes: int | None) -> torch.Tensor:
    """``y`` as int64 class indices (N,); float labels need ``num_classes`` and whole values."""
    if y.ndim != 1:
        raise ValueError(
            f"labels of {label!r} must be class indices of shape (N,), got shape "
            f"{tuple(y.shape)} (one-hot labels: pass y.argmax(1))"
        )
    if y.dtype == torch.bool:  # the message of check_labels, before any conversion
        check_labels(y, 2, f"labels of {label!r}")
    if y.is_floating_point() or y.is_complex():
        if num_classes is None:
            raise ValueError(
                f"cannot infer num_classes of {label!r} from float labels (dtype {y.dtype}): "
                "pass num_classes=K (the labels must be whole numbers 0 .. K-1)"
            )
        if y.is_complex() or not torch.equal(y, y.round()):
            raise ValueError(f"float labels of {label!r} must be whole class numbers 0 .. K-1")
    return y.long()


def _reshaped_inputs(
    x: torch.Tensor, input_shape: Sequence[int] | None, label: str
) -> torch.Tensor:
    if input_shape is None:
        return x
    shape = tuple(int(d) for d in input_shape)
    if math.prod(shape) != math.prod(x.shape[1:]):
        raise ValueError(
            f"input_shape={shape} does not fit the inputs of {label!r}, shape {tuple(x.shape)} "
            f"({math.prod(x.shape[1:])} values per sample)"
        )
    return x.reshape(len(x), *shape)
