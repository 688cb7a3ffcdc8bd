"""The work of the ``hierarchy`` experiment: planted data, BREEDS-style split, flat and
hierarchical training on the engine, finest-head evaluation; per seed for the reproduced
claims, then the faithful twin's calibration and grid (:func:`measure_faithful`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from netprism.core.seed import make_generator, seed_everything
from netprism.data.hierarchical import hierarchical
from netprism.experiments.hierarchy.config import HIER_METHODS, HierarchyExperimentConfig
from netprism.experiments.hierarchy.records import (
    FaithfulRecord,
    HierarchyRecords,
    MethodRun,
    SeedRun,
    flat_profile,
)
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
from netprism.train.callbacks import KeepBest

HOLDOUT_STREAM = 30_000  # the validation split's generator: HOLDOUT_STREAM + seed


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
    _validate_faithful(config)


def _validate_faithful(config: HierarchyExperimentConfig) -> None:
    grid = config.faithful_subpop_scales
    if not grid or any(not s > 0 for s in grid) or len(set(grid)) != len(grid):
        raise ValueError(
            f"faithful_subpop_scales must be distinct positive offset norms, got {grid!r}"
        )
    calibration = config.faithful_calibration_seeds
    shared = sorted(set(calibration) & (set(config.seeds) | set(config.faithful_seeds)))
    if not calibration or shared:
        raise ValueError(
            f"faithful_calibration_seeds must name at least one seed and none of the claim "
            f"seeds {config.seeds!r} or faithful_seeds {config.faithful_seeds!r}, got "
            f"{calibration!r}"
        )
    if not 0 < config.faithful_val_fraction < 1:
        raise ValueError(
            f"faithful_val_fraction must lie in (0, 1), got {config.faithful_val_fraction!r}"
        )
    for name in ("faithful_lr", "faithful_max_ratio"):
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(config, name)!r}")
    if not config.faithful_min_edges >= 0:
        raise ValueError(f"faithful_min_edges must be >= 0, got {config.faithful_min_edges!r}")
    for name in ("faithful_batch_size", "faithful_epochs"):
        if not isinstance(getattr(config, name), int) or getattr(config, name) < 1:
            raise ValueError(f"{name} must be a positive int, got {getattr(config, name)!r}")


def _data_kwargs(config: HierarchyExperimentConfig) -> dict[str, Any]:
    keys = ("n_super", "n_mid", "n_leaf", "n_subpops", "n_per_subpop", "dim", "noise")
    return {k: getattr(config, k) for k in keys} | {"scales": tuple(config.scales)}


def label_tree(config: HierarchyExperimentConfig) -> LabelTree:
    """The 3-level label tree (classes are its leaves) of the planted data."""
    ds = hierarchical(**{**_data_kwargs(config), "n_per_subpop": 1})
    return LabelTree.from_parents(ds.info.extra["parents"]).truncated(3)


def measure(config: HierarchyExperimentConfig) -> HierarchyRecords:
    """Every seed of the reproduced claims, then the faithful twin's calibration and grid
    (none without ``faithful_seeds``)."""
    runs = [one_seed(config, seed) for seed in config.seeds]
    return HierarchyRecords(runs, measure_faithful(config) if config.faithful_seeds else None)


def one_seed(config: HierarchyExperimentConfig, seed: int) -> SeedRun:
    """Flat and every hierarchical method on one seed's data, split and initial trunk."""
    return SeedRun(seed, train_methods(config, seed, ("flat", *config.methods)))


def faithful_config(
    config: HierarchyExperimentConfig, subpop_scale: float
) -> HierarchyExperimentConfig:
    """The faithful twin's setting at one subpopulation offset: the paper's lr and batch,
    ``faithful_epochs``, flat and sequential models only."""
    return dataclasses.replace(
        config,
        scales=(*config.scales[:3], subpop_scale),
        lr=config.faithful_lr,
        batch_size=config.faithful_batch_size,
        epochs=config.faithful_epochs,
        methods=("sequential",),
    )


def measure_faithful(config: HierarchyExperimentConfig) -> FaithfulRecord:
    """Calibrate s* on the flat model alone (calibration seeds), fix it, then train flat and
    sequential models on the twin's claim seeds (``faithful_seeds``) at every grid value."""
    grid = sorted(config.faithful_subpop_scales)
    val = config.faithful_val_fraction

    def cells(seeds: tuple[int, ...], modes: tuple[str, ...]) -> dict[float, list[SeedRun]]:
        return {
            s: [
                SeedRun(seed, train_methods(faithful_config(config, s), seed, modes, val=val))
                for seed in seeds
            ]
            for s in grid
        }

    calibration = cells(config.faithful_calibration_seeds, ("flat",))
    chosen = choose_subpop_scale(calibration, config.faithful_max_ratio, config.faithful_min_edges)
    grid_runs = cells(config.faithful_seeds, ("flat", "sequential"))
    return FaithfulRecord(calibration, chosen, grid_runs)


def choose_subpop_scale(
    calibration: dict[float, list[SeedRun]], max_ratio: float, min_edges: float
) -> float | None:
    """The smallest grid value whose flat models (mean over their seeds) have unseen / seen
    accuracy <= ``max_ratio`` and >= ``min_edges`` edges per unseen mistake; ``None`` when no
    value qualifies (the bounds are never relaxed)."""
    for scale in sorted(calibration):
        ratio, edges = flat_profile(calibration[scale])
        if ratio <= max_ratio and edges >= min_edges:
            return scale
    return None


def train_methods(
    config: HierarchyExperimentConfig, seed: int, modes: tuple[str, ...], *, val: float = 0.0
) -> dict[str, MethodRun]:
    """Train and evaluate each of ``modes`` on one seed's data, split and initial trunk.

    ``val`` > 0 holds that share of the seen training samples out (the same samples for every
    mode) and each model keeps its best epoch on their finest-head accuracy.
    """
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
    held = None
    if val > 0:
        kept, out = holdout(len(x), val, seed)
        x, y, held = x[kept], y[kept], (x[out], y[out])
    sizes = tuple(len(tree.level(d)) for d in (1, 2, 3))
    methods: dict[str, MethodRun] = {}
    for mode in modes:
        seed_everything(seed)  # the trunk is built first: the same initial trunk for every mode
        model = HierarchicalMLP(
            config.dim, (sizes[-1],) if mode == "flat" else sizes, hidden=config.hidden
        )
        best = [KeepBest("val_accuracy")] if held is not None else []
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
            val=held,
            callbacks=best,
        )
        methods[mode] = _evaluate(model, test.x, test.y, seen_te, unseen_te, tree, history)
        methods[mode].best_epoch = best[0].best_epoch if best else None
    return methods


def holdout(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (sorted) kept for training and held out for validation: a random ``fraction``
    of ``n`` (at least one sample each way), drawn from its own stream."""
    n_out = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=make_generator(HOLDOUT_STREAM + seed))
    return order[n_out:].sort().values, order[:n_out].sort().values


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
    levels = zip(tree.level_labels(pred[unseen]), tree.level_labels(y[unseen]))
    return MethodRun(
        seen_acc=acc["seen"],
        unseen_acc=acc["unseen"],
        seen_dist=dist["seen"],
        unseen_dist=dist["unseen"],
        unseen_edges={f"{a}>{b}": n for (a, b), n in edges.items()},
        final_train_loss=history[-1],
        unseen_level_acc=[100.0 * float((p == t).float().mean()) for p, t in levels],
    )
