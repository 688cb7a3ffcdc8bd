"""Where the engine's batches come from: the user's data, streamed, each sample with its index.

Every kind of training data becomes a *source* with two ways to read it:

- ``plan(epoch)``: the epoch's batches as dataset indices (the user's sampler decides the
  order for a ``DataLoader``; ``epoch_order(N, seed, epoch)`` for tensors and datasets), and
  ``load(plan)``: those batches read as :class:`Batch` objects, through a ``DataLoader`` with
  the user's workers, collate function and ``pin_memory`` -- so random augmentation is drawn
  afresh every epoch and nothing is held in memory beyond the batches in flight;
- ``ordered(batch_size)``: every sample once, in index order (the scoring pass of the
  curvature lens and the training-dynamics records).

A batch's indices come from the plan, not from the order samples arrive in, so shuffling,
workers and sharding cannot mismatch a per-sample record with its sample.  Items may be
``(x, y)``, ``(x, y, index)`` or dicts (see :class:`BatchKeys`); an ``IterableDataset`` trains
but has no stable index, so per-sample methods refuse it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from netprism.core.validation import check_finite
from netprism.data.base import tensor_pair

# ``order(epoch)``: a permutation (N,) cut into batches of the batch size, or the epoch's whole
# plan as a sequence of index batches (repeats and uneven batches allowed).
Order = Callable[[int], "torch.Tensor | Sequence[torch.Tensor]"]


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of ``epoch``: a permutation depending only on ``(seed, epoch)``."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def planned(
    order: Order | None, epoch: int, n: int, seed: int, batch_size: int
) -> list[torch.Tensor]:
    """The batches of ``epoch``: ``order(epoch)`` (default :func:`epoch_order`), a permutation
    cut into batches of ``batch_size`` or already a list of index batches."""
    got = order(epoch) if order is not None else epoch_order(n, seed, epoch)
    if isinstance(got, torch.Tensor):
        return list(got.split(batch_size))
    return [torch.as_tensor(b, dtype=torch.long) for b in got]


@dataclass
class Batch:
    """One batch as the engine sees it.

    Attributes
    ----------
    x : Tensor (B, ...) or any structure the model takes
    y : Tensor (B,)
        Class indices (a hook may replace them by soft targets ``(B, K)``).
    index : LongTensor (B,) or None
        Dataset indices of the samples (CPU); ``None`` for an ``IterableDataset``.
    """

    x: Any
    y: torch.Tensor
    index: torch.Tensor | None

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        """The batch with ``x`` and ``y`` on ``device`` (``index`` stays on the CPU)."""
        return Batch(
            _to(self.x, device, non_blocking), _to(self.y, device, non_blocking), self.index
        )


def _to(obj: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: _to(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(v, device, non_blocking) for v in obj)
    return obj


@dataclass(frozen=True)
class BatchKeys:
    """Which entries of a dict item hold the input, the label and (optionally) the index.

    The first key present wins.  Pass ``BatchKeys(input="img", label="target")`` to ``fit``
    for other names.
    """

    input: str | tuple[str, ...] = ("input", "image", "pixel_values", "x")
    label: str | tuple[str, ...] = ("label", "labels", "y", "target")
    index: str | tuple[str, ...] = ("index", "idx")

    def find(self, item: Mapping[str, Any], role: str, required: bool = True) -> Any:
        keys = getattr(self, role)
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        for key in keys:
            if key in item:
                return item[key]
        if required:
            raise KeyError(
                f"a dict item needs one of the {role} keys {list(keys)}, got keys "
                f"{sorted(map(str, item))}; pass batch_keys=BatchKeys({role}=...) to fit"
            )
        return None


def parse_batch(raw: Any, keys: BatchKeys, index: torch.Tensor | None = None) -> Batch:
    """A collated batch ``(x, y)``, ``(x, y, index)`` or dict -> :class:`Batch`.

    An index carried by the items wins over ``index`` (the position the plan asked for).
    """
    if isinstance(raw, Mapping):
        x, y = keys.find(raw, "input"), keys.find(raw, "label")
        carried = keys.find(raw, "index", required=False)
    elif isinstance(raw, (tuple, list)) and len(raw) in (2, 3):
        x, y = raw[0], raw[1]
        carried = raw[2] if len(raw) == 3 else None
    else:
        kind = (
            f"a {type(raw).__name__} of length {len(raw)}"
            if hasattr(raw, "__len__")
            else (type(raw).__name__)
        )
        raise TypeError(
            f"each batch must be (x, y), (x, y, index) or a dict with input and label keys, "
            f"got {kind}"
        )
    if carried is not None:
        index = torch.as_tensor(carried).long().reshape(-1).cpu()
    y = torch.as_tensor(y) if not isinstance(y, torch.Tensor) else y
    return Batch(x, y, index)


class TensorSource:
    """In-memory tensors ``x`` (N, ...) and ``y`` (N,): batches are index slices (no copies
    beyond the batch, no collate), the fast path for netprism datasets and ``(x, y)``."""

    iterable = False

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, seed: int, order: Order | None
    ) -> None:
        self.x, self.y = x, y
        self.num_samples = len(y)
        self.batch_size, self.seed, self.order = batch_size, seed, order

    def plan(self, epoch: int) -> list[torch.Tensor]:
        return planned(self.order, epoch, self.num_samples, self.seed, self.batch_size)

    def load(self, plan: Sequence[torch.Tensor]) -> Iterator[Batch]:
        for index in plan:
            yield Batch(self.x[index], self.y[index], index)

    def ordered(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        stop = self.num_samples if stop is None else stop
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            yield Batch(self.x[first:last], self.y[first:last], torch.arange(first, last))


class _PlanSampler:
    """A batch sampler that yields whatever plan the source set for this epoch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _RangeSampler:
    """Batches ``[start, start + b), ...`` up to ``stop``, generated on demand."""

    def __init__(self, start: int, stop: int, batch_size: int) -> None:
        self.start, self.stop, self.batch_size = start, stop, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for first in range(self.start, self.stop, self.batch_size):
            yield list(range(first, min(first + self.batch_size, self.stop)))

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.batch_size)


class LoaderSource:
    """A map-style dataset read through a ``DataLoader`` whose batches follow a plan.

    ``loader`` is the user's (its sampler makes the plan and its workers, collate function
    and ``pin_memory`` are kept) or one built here over a plain ``Dataset``, whose plan is
    ``epoch_order`` (the same order an in-memory run would use).
    """

    iterable = False

    def __init__(
        self,
        dataset: Dataset,
        *,
        keys: BatchKeys,
        user_loader: DataLoader | None = None,
        batch_size: int = 64,
        seed: int = 0,
        order: Order | None = None,
    ) -> None:
        self.dataset, self.keys, self.user_loader = dataset, keys, user_loader
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.batch_size, self.seed, self.order = batch_size, seed, order
        if (
            user_loader is not None
            and user_loader.batch_size is None
            and (user_loader.batch_sampler is None)
        ):
            raise ValueError(
                "a DataLoader with batch_size=None (automatic batching off) cannot be trained "
                "on: give it a batch_size or a batch_sampler"
            )
        self._train_sampler = _PlanSampler()
        self._train_loader = self._loader(self._train_sampler)
        self.pin_memory = bool(user_loader is not None and user_loader.pin_memory)

    def _loader(
        self, sampler: _PlanSampler | _RangeSampler, generator: torch.Generator | None = None
    ) -> DataLoader:
        user = self.user_loader
        if user is None:
            return DataLoader(self.dataset, batch_sampler=sampler, generator=generator)
        extra: dict[str, Any] = {}
        if user.num_workers > 0:
            extra.update(
                prefetch_factor=user.prefetch_factor, persistent_workers=user.persistent_workers
            )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=user.num_workers,
            collate_fn=user.collate_fn,
            pin_memory=user.pin_memory,
            timeout=user.timeout,
            worker_init_fn=user.worker_init_fn,
            multiprocessing_context=user.multiprocessing_context,
            generator=user.generator if generator is None else generator,
            **extra,
        )

    def plan(self, epoch: int) -> list[torch.Tensor]:
        if self.user_loader is not None:  # the user's sampler and batch size decide
            return [torch.as_tensor(list(b), dtype=torch.long) for b in self._user_batches()]
        return planned(self.order, epoch, self.num_samples, self.seed, self.batch_size)

    def _user_batches(self) -> Iterable[Sequence[int]]:
        assert self.user_loader is not None
        return self.user_loader.batch_sampler  # type: ignore[return-value]

    def load(self, plan: Sequence[torch.Tensor]) -> Iterator[Batch]:
        self._train_sampler.batches = [b.tolist() for b in plan]
        try:
            for index, raw in zip(plan, self._train_loader):
                yield self._checked(parse_batch(raw, self.keys, index))
        finally:
            self._train_sampler.batches = []  # O(N) index lists live one epoch only

    def ordered(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        stop = self.num_samples if stop is None else stop
        sampler = _RangeSampler(start, stop, batch_size)  # lazily: no O(N) lists
        # A DataLoader draws its workers' base seed when iterated: from a generator of its
        # own here, so scoring never moves the global random stream training goes on with.
        own = torch.Generator().manual_seed(self.seed)
        for raw, first in zip(self._loader(sampler, own), range(start, stop, batch_size)):
            index = torch.arange(first, min(first + batch_size, stop))
            yield self._checked(parse_batch(raw, self.keys, index))

    def _checked(self, batch: Batch) -> Batch:
        index = batch.index
        if (
            index is not None
            and len(index)
            and (int(index.min()) < 0 or int(index.max()) >= self.num_samples)
        ):
            bad = int(index.max()) if int(index.max()) >= self.num_samples else int(index.min())
            raise ValueError(
                f"an item carries index {bad}, but the dataset has {self.num_samples} samples: "
                f"per-sample records are kept at indices in [0, {self.num_samples})"
            )
        return batch


class IterableSource:
    """An ``IterableDataset`` (or a loader over one): trainable, but without a stable index."""

    iterable = True
    num_samples = None

    def __init__(self, loader: DataLoader, keys: BatchKeys) -> None:
        self.loader, self.keys = loader, keys
        self.pin_memory = bool(loader.pin_memory)

    def plan(self, epoch: int) -> list[torch.Tensor]:
        return []

    def load(self, plan: Sequence[torch.Tensor]) -> Iterator[Batch]:
        for raw in self.loader:
            yield parse_batch(raw, self.keys)

    def ordered(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[Batch]:
        for raw in self.loader:
            yield parse_batch(raw, self.keys)


Source = TensorSource | LoaderSource | IterableSource


def make_source(
    data: Any,
    *,
    batch_size: int = 64,
    seed: int = 0,
    order: Order | None = None,
    keys: BatchKeys | None = None,
    name: str = "data",
) -> Source:
    """Wrap any supported training data in a source (see the module docstring).

    Parameters
    ----------
    data : netprism TensorDataset, (x, y) tensors, torch TensorDataset of two tensors,
        map-style Dataset, IterableDataset or DataLoader
    batch_size, seed, order
        Batching of data that is not already a ``DataLoader``: batches of ``batch_size`` in
        the order ``order(epoch)`` (default ``epoch_order(N, seed, epoch)``).
    keys : BatchKeys, optional
        Names of dict items' entries.
    name : str
        Used in error messages ("train", "val", ...).
    """
    keys = keys or BatchKeys()
    tensors = tensor_pair(data)
    if tensors is not None:
        x, y = _checked_tensors(*tensors, name)
        return TensorSource(x, y, batch_size=batch_size, seed=seed, order=order)
    if isinstance(data, DataLoader):
        if isinstance(data.dataset, IterableDataset):
            return IterableSource(data, keys)
        _check_nonempty(data.dataset, name)
        return LoaderSource(data.dataset, keys=keys, user_loader=data)
    if isinstance(data, IterableDataset):
        return IterableSource(DataLoader(data, batch_size=batch_size), keys)
    if isinstance(data, Dataset):
        _check_nonempty(data, name)
        return LoaderSource(data, keys=keys, batch_size=batch_size, seed=seed, order=order)
    raise TypeError(
        f"{name} must be a Dataset, a DataLoader or (x, y) tensors, got {type(data).__name__}"
    )


def _checked_tensors(
    x: torch.Tensor, y: torch.Tensor, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(x) == 0:
        raise ValueError(f"{name} is empty: expected at least one sample")
    if len(x) != len(y):
        raise ValueError(f"{name}: x and y lengths differ ({len(x)} vs {len(y)})")
    if x.is_floating_point() or x.dtype in (torch.uint8, torch.bool):  # pixels -> float32
        x = check_finite(x.float(), f"{name} inputs")
    # other integer inputs (token ids for an embedding) keep their dtype
    if y.is_floating_point() or y.dtype == torch.bool or y.ndim != 1 or int(y.min()) < 0:
        raise ValueError(
            f"{name} labels must be a 1-D tensor of integer class indices >= 0, "
            f"got dtype {y.dtype}, shape {tuple(y.shape)}"
        )
    return x, y.long()


def _check_nonempty(dataset: Any, name: str) -> None:
    try:
        n = len(dataset)
    except TypeError as err:
        raise TypeError(f"{name}: a map-style dataset must define __len__") from err
    if n == 0:
        raise ValueError(f"{name} is empty: expected at least one sample")
