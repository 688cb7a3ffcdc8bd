"""The cells of the ``memorization_grid`` experiment: plant the noise, train once with the
one-call recipe, add SSFT and confident learning, and measure every detector."""

from __future__ import annotations

import dataclasses
import itertools
import time
import warnings
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from netprism.core.metrics import auroc, precision_at_k
from netprism.core.per_sample import predictions
from netprism.data import load_dataset, with_label_noise
from netprism.data.base import TensorDataset
from netprism.experiments.base import in_workers
from netprism.experiments.memorization_grid.config import (
    ARCHS,
    IMAGE_DATASETS,
    NOISE_KINDS,
    GridConfig,
)
from netprism.experiments.memorization_grid.records import Cell, CellRun
from netprism.memorization import (
    default_config,
    instance_dependent_noise,
    memorization_scores,
    second_split_forgetting,
)
from netprism.memorization.confident import confident_learning_scores, out_of_sample_probabilities
from netprism.memorization.premise import MemorizationPremiseWarning
from netprism.models import create_model

#: What the one call computes (the rest come from SSFT and confident learning).
ONE_CALL_METHODS = (
    "curvature", "csl", "loss", "learning_time", "aum", "forgetting",
    "cartography_confidence", "entropy",
)  # fmt: skip


def validate(config: GridConfig) -> None:
    """Names and budgets, checked before any work."""
    from netprism.data import list_datasets

    for name, given, allowed in (
        ("datasets", config.datasets, tuple(list_datasets())),
        ("archs", config.archs, ARCHS),
        ("noise_kinds", config.noise_kinds, NOISE_KINDS),
    ):
        unknown = sorted(set(given) - set(allowed))
        if unknown or not given:
            raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {given!r}")
    if not config.rates or not all(0.0 < r < 0.5 for r in config.rates):
        raise ValueError(f"rates must lie in (0, 0.5), got {config.rates!r}")
    for name in ("max_samples", "epochs", "every", "n_probes", "ssft_epochs", "workers"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if config.cl_folds < 2:
        raise ValueError(f"cl_folds must be >= 2, got {config.cl_folds!r}")


def cells(config: GridConfig) -> list[Cell]:
    """Every (dataset, architecture, noise, rate, seed); LeNet only on image datasets."""
    grid = itertools.product(
        config.datasets, config.archs, config.noise_kinds, config.rates, config.seeds
    )
    return [Cell(d, a, k, r, s) for d, a, k, r, s in grid if a != "lenet" or d in IMAGE_DATASETS]


def measure(config: GridConfig) -> list[CellRun]:
    """Every cell, in ``config.workers`` worker processes; results in cell order."""
    work = partial(run_cell, config=config)
    return in_workers(work, cells(config), config.workers, "memorization grid")


def run_cell(cell: Cell, config: GridConfig) -> CellRun:
    """One cell: noisy data, the one call, SSFT, confident learning, every AUROC."""
    clean = training_set(cell.dataset, config)
    noisy, flipped = planted_noise(clean, cell, config)
    factory = model_factory(cell.arch, noisy)
    recipe = dataclasses.replace(
        default_config(config.epochs, seed=cell.seed, device=config.device), progress=False
    )
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MemorizationPremiseWarning)
        result = memorization_scores(
            factory, noisy, recipe, methods=ONE_CALL_METHODS, n_probes=config.n_probes,
            h=config.h, every=config.every,
        )  # fmt: skip
    seconds["one_call"] = time.perf_counter() - start
    seconds.update({f"one_call_{part}": t for part, t in result.seconds.items()})
    scores = dict(result.scores)
    start = time.perf_counter()
    scores["ssft"] = second_split_forgetting(
        factory, noisy, recipe, second_epochs=config.ssft_epochs, seed=cell.seed
    )
    seconds["ssft"] = time.perf_counter() - start
    start = time.perf_counter()
    probs = out_of_sample_probabilities(
        factory, noisy, folds=config.cl_folds, config=recipe, seed=cell.seed
    )
    scores["confident_learning"] = confident_learning_scores(noisy.y, probs)
    seconds["confident_learning"] = time.perf_counter() - start
    k = int(flipped.sum())
    assert result.model is not None
    return CellRun(
        cell,
        auroc={m: auroc(flipped, v) for m, v in scores.items()},
        precision={m: precision_at_k(flipped, v, k) for m, v in scores.items()},
        train_accuracy=_accuracy(result.model, noisy),
        warned=any(issubclass(w.category, MemorizationPremiseWarning) for w in caught),
        seconds=seconds,
    )


def training_set(name: str, config: GridConfig) -> TensorDataset:
    """The first ``max_samples`` training samples; MNIST-1D standardised with one global mean
    and standard deviation (as the memorization experiment does)."""
    ds = load_dataset(name, split="train", data_dir=config.data_dir)
    ds = ds.subset(range(min(config.max_samples, len(ds))))
    if name == "mnist1d":
        ds = ds.with_tensors(x=(ds.x - ds.x.mean()) / ds.x.std())
    return ds


def planted_noise(
    ds: TensorDataset, cell: Cell, config: GridConfig
) -> tuple[TensorDataset, torch.Tensor]:
    if cell.noise == "instance":
        return instance_dependent_noise(ds, cell.rate, seed=cell.seed, device=config.device)
    return with_label_noise(ds, cell.rate, kind=cell.noise, seed=cell.seed)


def model_factory(arch: str, ds: TensorDataset) -> Callable[[], nn.Module]:
    shape, k = ds.input_shape, ds.num_classes
    if arch == "lenet":
        return partial(create_model, "lenet", input_shape=shape, num_classes=k)
    act = nn.GELU if arch == "mlp_gelu" else nn.ReLU
    return partial(
        create_model, "mlp", input_shape=shape, num_classes=k, hidden=(256, 256), act_layer=act
    )


def _accuracy(model: nn.Module, ds: TensorDataset) -> float:
    return float((predictions(model, ds.x, batch_size=1024) == ds.y).double().mean())
