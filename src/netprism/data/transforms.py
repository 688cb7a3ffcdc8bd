"""Dataset transforms that return the ground truth they planted.

Label noise and conflicting duplicates feed the memorization work (Garg et al., "Memorization
Through the Lens of Curvature of Loss Function Around Samples", arXiv 2307.05831); task streams
feed continual learning (GPM, arXiv 2103.09762); client partitions feed federated learning
(TOFU, arXiv 2201.08494; Dirichlet split after Hsu et al. 2019).

Every transform takes a netprism ``TensorDataset`` or any input of
:func:`netprism.data.base.as_dataset` (a ``torch.utils.data.TensorDataset(x, y)``, an ``(x, y)``
pair of tensors or arrays, a map-style ``Dataset`` of ``(x, y)`` items) and returns netprism
datasets.  For such inputs the number of classes is the largest label plus one: when the top
classes are absent (a subset, a few samples) that is lower than the true count, and label noise
or conflicting labels would only use the classes up to the largest present; pass
``num_classes=`` then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from netprism.core.validation import check_fraction, check_positive_int
from netprism.data.base import DatasetInfo, TensorDataset, as_dataset

NOISE_KINDS = ("symmetric", "pairflip", "instance")


def with_label_noise(
    ds: Any,
    rate: float,
    *,
    kind: str = "symmetric",
    seed: int = 0,
    num_classes: int | None = None,
    confusion: torch.Tensor | None = None,
) -> tuple[TensorDataset, torch.Tensor]:
    """Flip exactly ``round(rate * N)`` labels, chosen uniformly at random.

    Parameters
    ----------
    ds : TensorDataset or any input of :func:`~netprism.data.base.as_dataset`
        ``N`` samples, ``x`` (N, *input_shape), ``y`` (N,).
    rate : float in [0, 1)
    kind : {"symmetric", "pairflip", "instance"}
        "symmetric" moves a flipped label to one of the other ``K - 1`` classes uniformly;
        "pairflip" moves class ``k`` to ``(k + 1) mod K``; "instance" moves each flipped
        sample to the other class ``confusion`` scores highest for it (instance-dependent
        noise: the mistake a model would make on that very sample).
    seed : int
    num_classes : int, optional
        ``K`` for a dataset that is not a netprism one (default: largest label + 1, too low
        when the top classes are absent; required for float labels).
    confusion : Tensor (N, K), optional
        For ``kind="instance"`` (required there, refused otherwise): per-sample class scores,
        e.g. a separately trained weak model's probabilities on the clean data.

    Returns
    -------
    noisy : TensorDataset
        Same inputs, noisy labels; the clean labels are kept in ``noisy.extras["clean_y"]``.
    flipped : BoolTensor (N,)
        True where the label was changed (every flipped label differs from the clean one).

    Examples
    --------
    >>> x, y = torch.zeros(10, 2), torch.arange(10) % 2
    >>> noisy, flipped = with_label_noise((x, y), 0.3, seed=0, num_classes=4)
    >>> int(flipped.sum()), noisy.num_classes, bool((noisy.y[flipped] != y[flipped]).all())
    (3, 4, True)
    """
    check_fraction(rate, "rate")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    ds = as_dataset(ds, num_classes=num_classes)
    n, k = len(ds), _two_classes(ds, "label noise")
    _check_confusion(confusion, kind, n, k)
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(n, generator=gen)[: round(rate * n)]
    y = ds.y.clone()
    if kind == "instance":
        assert confusion is not None
        other = confusion[chosen].double().clone()  # (M, K)
        other[torch.arange(len(chosen)), y[chosen]] = -float("inf")  # never the given class
        y[chosen] = other.argmax(dim=1)
    else:
        if kind == "symmetric":  # never 0: always changes
            shift = torch.randint(1, k, (len(chosen),), generator=gen)
        else:
            shift = torch.ones(len(chosen), dtype=torch.long)
        y[chosen] = (y[chosen] + shift) % k
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[chosen] = True
    noisy = ds.with_tensors(y=y, name=f"{ds.name}+{kind}_noise{rate:g}", clean_y=ds.y)
    return noisy, flipped


def _check_confusion(confusion: torch.Tensor | None, kind: str, n: int, k: int) -> None:
    if kind != "instance":
        if confusion is not None:
            raise ValueError(f"confusion is only used by kind='instance', not kind={kind!r}")
        return
    if not isinstance(confusion, torch.Tensor) or confusion.shape != (n, k):
        got = tuple(confusion.shape) if isinstance(confusion, torch.Tensor) else confusion
        raise ValueError(
            f"kind='instance' needs confusion, a tensor (N, K) = ({n}, {k}) of per-sample class "
            f"scores, got {got!r}"
        )
    if not bool(torch.isfinite(confusion).all()):
        raise ValueError("confusion holds NaN or inf values")


#: How :func:`with_conflicting_duplicates` makes a copy: identical, with small Gaussian pixel
#: noise, or shifted by one position along the last axis.
DUPLICATE_KINDS = ("exact", "noise", "shift")


def with_conflicting_duplicates(
    ds: Any,
    n: int,
    *,
    seed: int = 0,
    num_classes: int | None = None,
    kind: str = "exact",
    noise_std: float = 0.05,
) -> tuple[TensorDataset, torch.Tensor]:
    """Append ``n`` copies of randomly chosen samples, each with a different label.

    Parameters
    ----------
    ds : TensorDataset or any input of :func:`~netprism.data.base.as_dataset`
    n : int
        Duplicates, ``1 <= n <= N``.
    seed : int
    num_classes : int, optional
        ``K`` for a dataset that is not a netprism one (see :func:`with_label_noise`).
    kind : {"exact", "noise", "shift"}
        ``"exact"``: the copy's input is identical; ``"noise"``: Gaussian noise of std
        ``noise_std`` added (drawn with seed ``seed + 1``) and clipped to [0, 1], the range of
        image inputs; ``"shift"``: the input moved by one position along its last axis
        (``torch.roll``, wrapping around).
    noise_std : float
        For ``kind="noise"``.

    Returns
    -------
    augmented : TensorDataset
        ``N + n`` samples; the originals keep their indices ``0 .. N-1``.
    dup_index : LongTensor (n, 2)
        Rows ``(original_index, duplicate_index)``; the two samples have (near-)identical
        inputs and different labels.

    Examples
    --------
    >>> from netprism.data import load_dataset
    >>> out, dup = with_conflicting_duplicates(load_dataset("digits"), 3, kind="shift")
    >>> len(out), torch.equal(out.x[dup[0, 1]], out.x[dup[0, 0]].roll(1, -1))
    (1350, True)
    """
    if kind not in DUPLICATE_KINDS:
        raise ValueError(f"kind must be one of {DUPLICATE_KINDS}, got {kind!r}")
    if not noise_std >= 0 or noise_std == float("inf"):
        raise ValueError(f"noise_std must be a finite float >= 0, got {noise_std!r}")
    check_positive_int(n, "n")
    ds = as_dataset(ds, num_classes=num_classes)
    if n > len(ds):
        raise ValueError(f"n must be <= the dataset size {len(ds)}, got {n}")
    gen = torch.Generator().manual_seed(seed)
    src = torch.randperm(len(ds), generator=gen)[:n]
    shift = torch.randint(1, _two_classes(ds, "conflicting labels"), (n,), generator=gen)
    new_y = (ds.y[src] + shift) % ds.num_classes
    x = torch.cat([ds.x, _copies(ds.x[src], kind, noise_std, seed)])
    y = torch.cat([ds.y, new_y])
    extras = {key: torch.cat([v, v[src]]) for key, v in ds.extras.items()}
    out = TensorDataset(x, y, ds.info, extras).with_tensors(name=f"{ds.name}+conflicts{n}")
    dup_index = torch.stack([src, len(ds) + torch.arange(n)], dim=1)
    return out, dup_index


def _copies(x: torch.Tensor, kind: str, noise_std: float, seed: int) -> torch.Tensor:
    """The duplicates' inputs (n, ...) made from the originals ``x`` (see DUPLICATE_KINDS)."""
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed + 1)
        return (x + noise_std * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)
    if kind == "shift":
        return torch.roll(x, shifts=1, dims=-1)
    return x


def permuted_tasks(
    ds: Any, n_tasks: int, *, seed: int = 0, first_identity: bool = True
) -> list[TensorDataset]:
    """Domain-incremental stream: task ``t`` applies a fixed pixel permutation to every input.

    The permutations depend only on ``seed``, so calling this on the train and test sets with
    the same seed gives matching tasks.  Labels (the shared head) are unchanged.  ``ds`` is a
    netprism dataset or any input of :func:`~netprism.data.base.as_dataset`.
    """
    check_positive_int(n_tasks, "n_tasks")
    ds = as_dataset(ds)
    d = ds.x[0].numel()
    gen = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(n_tasks):
        perm = torch.arange(d) if (t == 0 and first_identity) else torch.randperm(d, generator=gen)
        x = ds.x.reshape(len(ds), d)[:, perm].reshape(ds.x.shape)  # (N, *input_shape)
        tasks.append(ds.with_tensors(x=x, name=f"{ds.name}/perm{t}"))
    return tasks


def split_tasks(
    ds: Any,
    n_tasks: int,
    *,
    relabel: bool = True,
    class_order: list[int] | None = None,
    num_classes: int | None = None,
) -> list[TensorDataset]:
    """Class-split stream: task ``t`` holds the ``t``-th group of ``K / n_tasks`` classes.

    With ``relabel`` the labels become ``0 .. K/n_tasks - 1`` within a task (task-incremental,
    one head per task); the original labels stay in ``extras["global_y"]``.  ``ds`` is a
    netprism dataset or any input of :func:`~netprism.data.base.as_dataset` (``num_classes``:
    its ``K``, see :func:`with_label_noise`).
    """
    check_positive_int(n_tasks, "n_tasks")
    ds = as_dataset(ds, num_classes=num_classes)
    k = ds.num_classes
    order = list(range(k)) if class_order is None else list(class_order)
    if sorted(order) != list(range(k)):
        raise ValueError(f"class_order must be a permutation of range({k}), got {class_order}")
    if k % n_tasks:
        raise ValueError(f"n_tasks must divide the number of classes {k}, got {n_tasks}")
    per = k // n_tasks
    tasks = []
    for t in range(n_tasks):
        group = torch.tensor(order[t * per : (t + 1) * per])
        mask = (ds.y.unsqueeze(1) == group).any(dim=1)
        part = ds.subset(mask.nonzero().squeeze(1), name=f"{ds.name}/split{t}")
        if relabel:
            local = (part.y.unsqueeze(1) == group).float().argmax(dim=1)
            classes = tuple(ds.classes[int(c)] for c in group)
            part = _relabelled(part, local, classes)
        tasks.append(part)
    return tasks


def _two_classes(ds: TensorDataset, what: str) -> int:
    """``K`` of ``ds``, which must be >= 2 for a label to move to another class."""
    if ds.num_classes < 2:
        raise ValueError(
            f"{what} needs at least 2 classes, {ds.name!r} has {ds.num_classes}; "
            "pass num_classes=K for data whose labels do not show every class"
        )
    return ds.num_classes


def _relabelled(part: TensorDataset, y: torch.Tensor, classes: tuple[str, ...]) -> TensorDataset:
    info = DatasetInfo(
        part.name, classes, part.input_shape, part.info.source, dict(part.info.extra)
    )
    return TensorDataset(part.x, y, info, {**part.extras, "global_y": part.y})


def partition_clients(
    ds: Any, n: int, *, alpha: float | None = None, seed: int = 0, min_size: int = 1
) -> list[TensorDataset]:
    """Split ``ds`` across ``n`` clients: IID when ``alpha`` is None, else Dirichlet(alpha)
    label skew per class (smaller ``alpha`` = more skewed).  Every client gets at least
    ``min_size`` samples; the partition covers each sample exactly once.  ``ds`` is a netprism
    dataset or any input of :func:`~netprism.data.base.as_dataset`.
    """
    check_positive_int(n, "n")
    ds = as_dataset(ds)
    if n * min_size > len(ds):
        raise ValueError(f"cannot give {n} clients >= {min_size} samples from {len(ds)}")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"alpha must be > 0 or None, got {alpha!r}")
    gen = torch.Generator().manual_seed(seed)
    for _ in range(100):
        parts = (
            _iid_split(len(ds), n, gen)
            if alpha is None
            else _dirichlet_split(ds.y, ds.num_classes, n, alpha, gen)
        )
        if min(len(p) for p in parts) >= min_size:
            return [ds.subset(p, name=f"{ds.name}/client{i}") for i, p in enumerate(parts)]
    raise ValueError(
        f"could not give every one of {n} clients >= {min_size} samples with "
        f"alpha={alpha}; raise alpha or lower n"
    )


def _iid_split(n_samples: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n_samples, generator=gen).tensor_split(n))


def _dirichlet_split(
    y: torch.Tensor, k: int, n: int, alpha: float, gen: torch.Generator
) -> list[torch.Tensor]:
    # Per class, share its samples among clients by proportions ~ Dirichlet(alpha * 1_n).
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    parts: list[list[torch.Tensor]] = [[] for _ in range(n)]
    for c in range(k):
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        props = torch.from_numpy(rng.dirichlet(np.full(n, alpha)))
        cuts = (props.cumsum(0) * len(idx)).round().long()[:-1].tolist()
        for i, chunk in enumerate(idx.tensor_split(cuts)):
            parts[i].append(chunk)
    return [torch.sort(torch.cat(p)).values for p in parts]
