"""The per-seed work of the ``dub_crossbar`` experiment: the dense CNN, then D.U.B.,
snap-only and magnitude-pruned arms at every target sparsity, each measured on crossbars."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn

from netprism.compression.crossbar import base_adc_bits, crossbar_report
from netprism.compression.dub import (
    fit_dub,
    layer_weights,
    magnitude_masks,
    masked_finetune,
    snap_to_sparsity,
)
from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.experiments.dub_crossbar.config import (
    MODELS,
    POOL_AFTER,
    WIDTHS,
    DUBCrossbarConfig,
)
from netprism.experiments.dub_crossbar.records import Arm, SeedRun
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit


def validate(config: DUBCrossbarConfig) -> None:
    """Model, crossbar size, sparsities, schedules and sizes, checked before any work."""
    if config.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {config.model!r}")
    if not isinstance(config.size, int) or config.size < 2:
        raise ValueError(f"size (crossbar rows) must be an int >= 2, got {config.size!r}")
    if not config.sparsities or any(not 0.0 < s < 1.0 for s in config.sparsities):
        raise ValueError(f"sparsities must be values in (0, 1), got {config.sparsities!r}")
    for key in ("epochs", "dub_epochs", "finetune_epochs", "baseline_finetune_epochs"):
        value = getattr(config, key)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an int >= 1, got {value!r}")
    if config.lam < 0:
        raise ValueError(f"lam must be >= 0, got {config.lam!r}")
    if config.train_samples < 0:
        raise ValueError(f"train_samples must be >= 0 (0 = all), got {config.train_samples!r}")
    if not config.vgg_sizes or any(not isinstance(t, int) or t < 2 for t in config.vgg_sizes):
        raise ValueError(f"vgg_sizes must be ints >= 2, got {config.vgg_sizes!r}")


def digits_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """The calibration's CNN: five 3x3 convs (no bias) + BN + ReLU, two pools, one FC.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` of one image.
    num_classes : int
        Outputs of the final linear layer.
    """
    layers: list[nn.Module] = []
    c = input_shape[0]
    for i, width in enumerate(WIDTHS):
        layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if i in POOL_AFTER:
            layers.append(nn.MaxPool2d(2))
        c = width
    body = nn.Sequential(*layers, nn.Flatten())
    with torch.no_grad():
        features = body(torch.zeros(1, *input_shape)).shape[1]
    return nn.Sequential(*body, nn.Linear(features, num_classes))


def _train_config(config: DUBCrossbarConfig, seed: int, epochs: int, lr: float) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=config.batch_size,
        lr=lr,
        optimizer="adam",
        weight_decay=0.0,
        scheduler="cosine",
        seed=seed,
        device=config.device,
        progress=False,
    )


def one_seed(config: DUBCrossbarConfig, seed: int) -> SeedRun:
    """The dense net and every (method, sparsity) arm on one seed's data and weights."""
    train = load_dataset(config.dataset, "train", data_dir=config.data_dir, seed=seed)
    test = load_dataset(config.dataset, "test", data_dir=config.data_dir, seed=seed)
    if config.train_samples:
        gen = torch.Generator().manual_seed(seed)
        train = train.subset(torch.randperm(len(train), generator=gen)[: config.train_samples])
    seed_everything(seed)
    shape, classes = tuple(train.input_shape), train.num_classes
    if config.model == "vgg11":
        dense = create_model("vgg", input_shape=shape, num_classes=classes, depth=11)
    else:
        dense = digits_cnn(shape, classes)
    fit(dense, train, _train_config(config, seed, config.epochs, config.lr))
    example = test.x[:1]
    arms = {("dense", 0.0): _measure_arm(dense, test, example, config, 0.0)}
    regularized = copy.deepcopy(dense)
    reg_cfg = _train_config(config, seed, config.dub_epochs, config.finetune_lr)
    history = fit_dub(regularized, train, reg_cfg, size=config.size, lam=config.lam).history
    ft = _train_config(config, seed, config.finetune_epochs, config.finetune_lr)
    ft_base = _train_config(config, seed, config.baseline_finetune_epochs, config.finetune_lr)
    for s in config.sparsities:
        starts = {
            "dub": (regularized, "snap", ft),
            "snap_only": (dense, "snap", ft_base),
            "magnitude_global": (dense, "global", ft_base),
            "magnitude_layer": (dense, "layer", ft_base),
        }
        for method, (start, how, cfg) in starts.items():
            arms[(method, s)] = _pruned_arm(start, how, s, cfg, train, test, example, config)
    return SeedRun(seed, arms, [h["reg"] for h in history])


def _pruned_arm(
    start: nn.Module,
    how: str,
    sparsity: float,
    cfg: TrainConfig,
    train: Any,
    test: Any,
    example: torch.Tensor,
    config: DUBCrossbarConfig,
) -> Arm:
    """Prune a copy of ``start`` (``how``: "snap", "global" or "layer"), fine-tune, measure."""
    model = copy.deepcopy(start)
    weights = layer_weights(model)
    if how == "snap":
        snap = snap_to_sparsity(weights, config.size, sparsity)
        masks, threshold = snap.masks, snap.threshold
    else:
        masks, threshold = magnitude_masks(weights, sparsity, scope=how), float("nan")
    before = _pruned_accuracy(model, masks, test, config)
    masked_finetune(model, masks, train, cfg)
    arm = _measure_arm(model, test, example, config, threshold)
    return dataclasses.replace(arm, acc_before_ft=before)


def _pruned_accuracy(
    model: nn.Module, masks: dict[str, torch.Tensor], test: Any, config: DUBCrossbarConfig
) -> float:
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for name, w in layer_weights(pruned).items():
            w.mul_(masks[name].to(w.dtype))
    return 100.0 * evaluate(pruned, test, device=config.device)["accuracy"]


def _measure_arm(
    model: nn.Module,
    test: Any,
    example: torch.Tensor,
    config: DUBCrossbarConfig,
    threshold: float,
) -> Arm:
    acc = 100.0 * evaluate(model, test, device=config.device)["accuracy"]
    rep = crossbar_report(model.cpu(), example, config.size)
    return Arm(
        acc=acc,
        acc_before_ft=acc,
        sparsity=rep.sparsity,
        saving_exp2=rep.saving("exp2"),
        saving_linear=rep.saving("linear", a=config.linear_a, c=config.linear_c),
        histogram=rep.histogram(),
        threshold=threshold,
        crossbars=len(rep.levels),
        base_bits=base_adc_bits(config.size),
    )
