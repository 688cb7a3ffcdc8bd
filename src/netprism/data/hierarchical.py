"""Class hierarchies with subpopulations: a planted synthetic tree and CIFAR-100 coarse/fine.

Data for Mukherjee, Garg & Roy, "Encoding Hierarchical Information in Neural Networks helps
in Subpopulation Shift" (IEEE TAI 2023, arXiv 2112.10844), whose benchmarks are BREEDS
(Santurkar, Tsipras & Madry, ICLR 2021): classes are nodes of a label tree, each made of
unlabelled subpopulations, trained on some and tested on the others.

- ``hierarchical`` (embedded): a tree-structured Gaussian mixture.  ``n_super`` superclasses,
  each with ``n_mid`` mid-level nodes, each with ``n_leaf`` classes, each with ``n_subpops``
  subpopulations; a subpopulation's mean is the sum of one random offset per level (random
  directions, norms ``scales`` shrinking with depth), and samples add isotropic noise.
- :func:`cifar100_hierarchy`: the user's CIFAR-100 files as a 20-coarse x 5-fine tree (fine
  classes are the subpopulations of their coarse class).  The files hold no level above the
  20 superclasses, so a hierarchical model over them needs a tree the user supplies.

The tree travels as plain data (``info.extra["parents"]``, child -> parent) so the data layer
needs no tree type; :class:`netprism.robustness.hierarchy.LabelTree` reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from netprism.core.validation import check_positive_int
from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.registry import DATASETS, load_dataset

DEFAULT_SCALES = (4.0, 3.0, 2.4, 2.3)  # superclass, mid node, class, subpopulation offsets


def tree_parents(n_super: int, n_mid: int, n_leaf: int, n_subpops: int) -> dict[str, str | None]:
    """Child -> parent map of the planted 4-edge tree ``root > s > s.m > s.m.c > s.m.c.p``.

    Depth 3 holds the classes, depth 4 their subpopulations.

    Examples
    --------
    >>> p = tree_parents(2, 1, 2, 1)
    >>> p["s1.m0.c1"], p["s1.m0.c1.p0"], len(p)
    ('s1.m0', 's1.m0.c1', 13)
    """
    for v, name in ((n_super, "n_super"), (n_mid, "n_mid"), (n_leaf, "n_leaf")):
        check_positive_int(v, name)
    check_positive_int(n_subpops, "n_subpops")
    parents: dict[str, str | None] = {"root": None}
    for s in range(n_super):
        parents[f"s{s}"] = "root"
        for m in range(n_mid):
            parents[f"s{s}.m{m}"] = f"s{s}"
            for c in range(n_leaf):
                parents[f"s{s}.m{m}.c{c}"] = f"s{s}.m{m}"
                for p in range(n_subpops):
                    parents[f"s{s}.m{m}.c{c}.p{p}"] = f"s{s}.m{m}.c{c}"
    return parents


def _offsets(n: int, dim: int, scale: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` random directions of norm ``scale``, (n, D)."""
    v = torch.randn(n, dim, generator=gen)
    return scale * v / v.norm(dim=1, keepdim=True)


@DATASETS.register("hierarchical")
def hierarchical(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    n_super: int = 4,
    n_mid: int = 2,
    n_leaf: int = 2,
    n_subpops: int = 4,
    n_per_subpop: int = 100,
    dim: int = 32,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    noise: float = 1.0,
    **kwargs: Any,
) -> TensorDataset:
    """A planted 3-level label tree with ``n_subpops`` subpopulations per class.

    The means depend only on ``seed`` (train and test share them); the samples differ per
    split.  Every subpopulation gets ``n_per_subpop`` samples in each split.

    Returns
    -------
    TensorDataset
        ``x`` (N, D), ``y`` (N,) the class (depth-3 node) index, in the order of
        ``info.classes``.  ``extras``: ``"level1"`` (superclass), ``"level2"`` (mid node),
        ``"subpop"`` (global subpopulation index into ``info.extra["subpops"]``), all (N,).
        ``info.extra``: ``"parents"`` (the 4-edge tree, child -> parent), ``"subpops"``,
        ``"means"`` (subpopulations x D) and ``"scales"``.

    Examples
    --------
    >>> ds = hierarchical(n_super=2, n_mid=2, n_leaf=2, n_subpops=2, n_per_subpop=3, dim=4)
    >>> ds.x.shape, ds.num_classes, int(ds.extras["subpop"].max()) + 1
    (torch.Size([48, 4]), 8, 16)
    """
    if kwargs:
        raise ValueError(f"unknown option(s) {sorted(kwargs)} for dataset 'hierarchical'")
    check_positive_int(n_per_subpop, "n_per_subpop")
    check_positive_int(dim, "dim")
    if len(scales) != 4 or any(not s >= 0 for s in scales):
        raise ValueError(
            f"scales must be 4 non-negative offset norms (coarse to fine), got {scales!r}"
        )
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    parents = tree_parents(n_super, n_mid, n_leaf, n_subpops)
    gen = torch.Generator().manual_seed(seed)
    sizes = [n_super, n_mid, n_leaf, n_subpops]
    means = torch.zeros(1, dim)
    for size, scale in zip(sizes, scales):
        # (P, D) -> (P * size, D): every node gets its own offset from its parent's mean
        child = _offsets(len(means) * size, dim, scale, gen)
        means = means.repeat_interleave(size, dim=0) + child
    n_sub = len(means)
    subpop = torch.arange(n_sub).repeat_interleave(n_per_subpop)  # (N,)
    gen.manual_seed(seed * 2 + (1 if split == "train" else 2) + 20_000)
    x = means[subpop] + noise * torch.randn(len(subpop), dim, generator=gen)  # (N, D)
    y = subpop // n_subpops
    names = [n for n in parents if n.count(".") == 3]
    classes = tuple(n for n in parents if n.count(".") == 2)
    info = DatasetInfo(
        "hierarchical",
        classes,
        (dim,),
        f"planted tree {n_super}x{n_mid}x{n_leaf} classes, {n_subpops} subpopulations each, "
        f"seed={seed}",
        {"parents": parents, "subpops": tuple(names), "means": means, "scales": tuple(scales)},
    )
    extras = {"level1": y // (n_mid * n_leaf), "level2": y // n_leaf, "subpop": subpop}
    return TensorDataset(x, y, info, extras)


def cifar100_hierarchy(
    data_dir: str | Path, split: str = "train"
) -> tuple[TensorDataset, dict[str, str | None]]:
    """The user's CIFAR-100 with coarse labels as classes and fine labels as subpopulations.

    Returns
    -------
    dataset : TensorDataset
        ``x`` (N, 3, 32, 32), ``y`` the 20 coarse labels, ``extras["subpop"]`` (and
        ``"fine_y"``) the 100 fine labels.
    parents : dict
        The tree ``root > coarse name > fine name`` (child -> parent), for
        ``LabelTree.from_parents`` and ``subpopulation_split(tree, 1, n_seen=3)``.
    """
    ds = load_dataset("cifar100", split=split, data_dir=data_dir, label_mode="coarse")
    coarse_names = ds.info.extra["coarse_classes"]
    fine_names = ds.info.extra["fine_classes"]
    coarse, fine = ds.extras["coarse_y"], ds.extras["fine_y"]
    parents: dict[str, str | None] = {"root": None}
    parents.update({str(c): "root" for c in coarse_names})
    pairs = torch.unique(torch.stack([fine, coarse], 1), dim=0).tolist()
    for f, c in pairs:
        if str(fine_names[f]) in parents and parents[str(fine_names[f])] != coarse_names[c]:
            raise ValueError(f"fine class {fine_names[f]!r} has two coarse classes in {data_dir}")
        parents[str(fine_names[f])] = str(coarse_names[c])
    return ds.with_tensors(subpop=fine), parents
