"""``dub_crossbar``: D.U.B. pruning for cheap crossbar ADCs against magnitude pruning.

Ibrayev, Garg, Chakraborty & Roy, "Pruning for Improved ADC Efficiency in Crossbar-based Analog
In-memory Accelerators", arXiv 2403.13082 (2024). The recipe was calibrated on digits at small
scale before the claims were fixed.

Per seed, a digits CNN (conv 1->32, 32->64, pool, 64->64, 64->128, pool, 128->128, FC->10;
3x3, pad 1, no bias, BN) is trained dense (Adam 3e-3, cosine).  Every conv and the FC layer
are mapped onto ``T x T`` crossbars.  From the same dense weights, at each target sparsity:

- D.U.B.: ``dub_epochs`` of CE + lam * Hoyer variance (one-sided gate, Adam 1e-3), snap to
  levels at the target sparsity, ``finetune_epochs`` of masked fine-tuning;
- snap only (ablation): the same snap on the dense weights, ``baseline_finetune_epochs``;
- global and layer-wise magnitude pruning, ``baseline_finetune_epochs`` each.

Every arm thus gets the same post-dense budget.  ADC energy uses conversion counts from each
layer's output size, under ``exp2`` (``2^b``) and ``linear`` (``a b + c``) models.  The VGG11
tile counts come from the conv shapes alone.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.compression.crossbar import (
    VGG11_CIFAR_CONV_SHAPES,
    base_adc_bits,
    count_crossbars,
    crossbar_report,
)
from netprism.compression.dub import (
    fit_dub,
    layer_weights,
    magnitude_masks,
    masked_finetune,
    snap_to_sparsity,
)
from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.experiments._dub_crossbar_report import (
    Arm,
    SeedRun,
    claims_and_metrics,
    plot_all,
)
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit, resolve_device

MODELS = ("digits_cnn", "vgg11")
WIDTHS = (32, 64, 64, 128, 128)  # conv widths of the calibration's digits CNN
POOL_AFTER = (1, 3)  # 2x2 max pool after these convs


@dataclass(frozen=True)
class DUBCrossbarConfig:
    """Config of the ``dub_crossbar`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    model: str = "digits_cnn"  # or "vgg11" (CIFAR-style, BN)
    size: int = 16  # crossbar rows = columns
    sparsities: tuple[float, ...] = (0.75, 0.875)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 30  # dense training
    lr: float = 3e-3
    batch_size: int = 64
    dub_epochs: int = 10  # regularized training from the dense weights
    lam: float = 1e-3
    finetune_epochs: int = 10  # after D.U.B.'s snap
    baseline_finetune_epochs: int = 20  # magnitude and snap-only: the same post-dense budget
    finetune_lr: float = 1e-3
    train_samples: int = 0  # 0: the whole training split
    linear_a: float = 1.0  # linear (SAR) ADC model E = a * bits + c
    linear_c: float = 0.0
    min_ratio: float = 2.0  # D.U.B. saving / magnitude saving, exp2 model
    max_acc_drop: float = 1.0  # points below dense
    vgg_sizes: tuple[int, ...] = (32, 64, 128, 256)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 2,
        "dub_epochs": 1,
        "finetune_epochs": 1,
        "baseline_finetune_epochs": 1,
        "train_samples": 256,
        "seeds": (0,),
    },
    "small": {},
    # The paper's setting (VGG11, CIFAR-10 from --data-dir, 64x64 crossbars) with a shorter
    # Adam schedule than its 160-epoch SGD one; not run on CPU.
    "full": {
        "model": "vgg11",
        "dataset": "cifar10",
        "size": 64,
        "seeds": (0, 1, 2),
        "epochs": 60,
        "batch_size": 128,
        "dub_epochs": 20,
        "finetune_epochs": 20,
        "baseline_finetune_epochs": 40,
        "device": "auto",
    },
}


def digits_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """The calibration's CNN: five 3x3 convs (no bias) + BN + ReLU, two pools, one FC."""
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


@register_experiment(
    "dub_crossbar",
    config=DUBCrossbarConfig,
    scales=SCALES,
    demo=False,
    paper="Ibrayev, Garg, Chakraborty & Roy, Pruning for Improved ADC Efficiency in "
    "Crossbar-based Analog In-memory Accelerators (arXiv 2403.13082, 2024)",
)
def run(config: DUBCrossbarConfig, *, out_dir: Path | None = None) -> Result:
    """VGG11 tile counts, then dense / D.U.B. / snap-only / magnitude arms per seed."""
    _validate(config)
    tiles = {t: count_crossbars(VGG11_CIFAR_CONV_SHAPES, t) for t in config.vgg_sizes}
    vgg_weights = sum(o * i * a * b for o, i, a, b in VGG11_CIFAR_CONV_SHAPES)
    with torch_threads(config.threads):
        runs = [_one_seed(config, seed) for seed in config.seeds]
    claims, metrics, baselines = claims_and_metrics(runs, config, tiles, vgg_weights)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, config, Path(out_dir))
        data = {str(r.seed): r.to_dict() for r in runs}
        atomic_write_text(Path(out_dir) / "runs.json", json.dumps(data, indent=1))
    return seeded_result(
        "dub_crossbar", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: DUBCrossbarConfig) -> None:
    resolve_device(config.device)  # an unusable device fails before any model is built
    check_seeds(config.seeds)
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


def _one_seed(config: DUBCrossbarConfig, seed: int) -> SeedRun:
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
    arms = {("dense", 0.0): _measure(dense, test, example, config, 0.0)}
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
            model = copy.deepcopy(start)
            weights = layer_weights(model)
            if how == "snap":
                snap = snap_to_sparsity(weights, config.size, s)
                masks, threshold = snap.masks, snap.threshold
            else:
                masks, threshold = magnitude_masks(weights, s, scope=how), float("nan")
            before = _pruned_accuracy(model, masks, test, config)
            masked_finetune(model, masks, train, cfg)
            arm = _measure(model, test, example, config, threshold)
            arms[(method, s)] = dataclasses.replace(arm, acc_before_ft=before)
    return SeedRun(seed, arms, [h["reg"] for h in history])


def _pruned_accuracy(
    model: nn.Module, masks: dict[str, torch.Tensor], test: Any, config: DUBCrossbarConfig
) -> float:
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for name, w in layer_weights(pruned).items():
            w.mul_(masks[name].to(w.dtype))
    return 100.0 * evaluate(pruned, test, device=config.device)["accuracy"]


def _measure(
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
