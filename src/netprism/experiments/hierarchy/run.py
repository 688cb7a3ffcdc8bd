"""The per-seed work of the ``hierarchy`` experiment: planted data, BREEDS-style split, flat
and hierarchical training on the engine, finest-head evaluation."""

from __future__ import annotations

from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.data.hierarchical import hierarchical
from netprism.experiments.hierarchy.config import HIER_METHODS, HierarchyExperimentConfig
from netprism.experiments.hierarchy.records import MethodRun, SeedRun
from netprism.robustness.hierarchy import (
    LabelTree,
    catastrophic_coefficient,
    mistake_edge_counts,
    subpopulation_split,
)
from netprism.robustness.hierarchy_train import (
    HierarchicalMLP,
    conditional_config,
    conditional_fit,
    predict_leaves,
)
from netprism.train import resolve_device


def validate(config: HierarchyExperimentConfig) -> None:
    """Methods, split, widths and the tolerance, checked before any work."""
    unknown = [m for m in config.methods if m not in HIER_METHODS]
    if unknown or "sequential" not in config.methods:
        raise ValueError(
            f"methods must be a subset of {HIER_METHODS} containing 'sequential' (the claims "
            f"are about it), got {config.methods!r}"
        )
    if not 1 <= config.n_seen < config.n_subpops:
        raise ValueError(
            f"n_seen must lie in [1, n_subpops - 1] = [1, {config.n_subpops - 1}], "
            f"got {config.n_seen!r}"
        )
    if not config.hidden or any(h <= 0 for h in config.hidden):
        raise ValueError(f"hidden must be non-empty positive widths, got {config.hidden!r}")
    if config.max_seen_drop < 0:
        raise ValueError(f"max_seen_drop must be >= 0 points, got {config.max_seen_drop!r}")


def _data_kwargs(config: HierarchyExperimentConfig) -> dict[str, Any]:
    keys = ("n_super", "n_mid", "n_leaf", "n_subpops", "n_per_subpop", "dim", "noise")
    return {k: getattr(config, k) for k in keys} | {"scales": tuple(config.scales)}


def label_tree(config: HierarchyExperimentConfig) -> LabelTree:
    """The 3-level label tree (classes are its leaves) of the planted data."""
    ds = hierarchical(**{**_data_kwargs(config), "n_per_subpop": 1})
    return LabelTree.from_parents(ds.info.extra["parents"]).truncated(3)


def one_seed(config: HierarchyExperimentConfig, seed: int) -> SeedRun:
    """Flat and every hierarchical method on one seed's data, split and initial trunk."""
    device = resolve_device(config.device)
    kw = _data_kwargs(config)
    train = hierarchical(split="train", seed=seed, **kw)
    test = hierarchical(split="test", seed=seed, **kw)
    full = LabelTree.from_parents(train.info.extra["parents"])  # depth 4: subpops are leaves
    tree = full.truncated(3)
    split = subpopulation_split(full, 3, n_seen=config.n_seen, seed=seed)
    names = train.info.extra["subpops"]
    seen_tr, _ = split.masks([names[i] for i in train.extras["subpop"].tolist()])
    seen_te, unseen_te = split.masks([names[i] for i in test.extras["subpop"].tolist()])
    x, y = train.x[seen_tr], train.y[seen_tr]
    sizes = tuple(len(tree.level(d)) for d in (1, 2, 3))
    methods: dict[str, MethodRun] = {}
    for mode in ("flat", *config.methods):
        seed_everything(seed)  # the trunk is built first: the same initial trunk for every mode
        model = HierarchicalMLP(
            config.dim, (sizes[-1],) if mode == "flat" else sizes, hidden=config.hidden
        )
        history = conditional_fit(
            model,
            (x, y),
            tree,
            mode=mode,
            config=conditional_config(
                epochs=config.epochs,
                batch_size=config.batch_size,
                lr=config.lr,
                momentum=config.momentum,
                weight_decay=config.weight_decay,
                seed=seed,
                device=str(device),
            ),
        )
        methods[mode] = _evaluate(model, test.x, test.y, seen_te, unseen_te, tree, history)
    return SeedRun(seed, methods)


def _evaluate(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    seen: torch.Tensor,
    unseen: torch.Tensor,
    tree: LabelTree,
    history: list[float],
) -> MethodRun:
    pred = predict_leaves(model, x)
    acc = {
        k: 100.0 * float((pred[m] == y[m]).float().mean())
        for k, m in (("seen", seen), ("unseen", unseen))
    }
    dist = {
        k: catastrophic_coefficient(pred[m], y[m], tree)
        for k, m in (("seen", seen), ("unseen", unseen))
    }
    edges = mistake_edge_counts(pred[unseen], y[unseen], tree)
    return MethodRun(
        seen_acc=acc["seen"],
        unseen_acc=acc["unseen"],
        seen_dist=dist["seen"],
        unseen_dist=dist["unseen"],
        unseen_edges={f"{a}>{b}": n for (a, b), n in edges.items()},
        final_train_loss=history[-1],
    )
