"""The per-seed work of the ``snn_pruning`` experiment: the full SNN, PCA widths, retrained
narrow SNNs, staged T, post-training quantization and the energy proxy."""

from __future__ import annotations

from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.experiments.snn_pruning.config import SNNPruningConfig, faithful_config
from netprism.experiments.snn_pruning.records import SeedRun
from netprism.models import create_model
from netprism.spiking import DCTEncoder, DirectEncoder, RateEncoder
from netprism.spiking.network import (
    EncodedSNN,
    convert_ann,
)
from netprism.spiking.pruning import (
    QUANTITIES,
    energy_proxy,
    quantize_weights,
    significant_widths,
    temporal_schedule,
)
from netprism.train.config import TrainConfig
from netprism.train.loop import evaluate, fit


def validate(config: SNNPruningConfig) -> None:
    """Encoding, time steps, retrain rules and bits, checked before any work."""
    for name in ("encoding", "faithful_encoding"):
        if getattr(config, name) not in ("direct", "rate", "dct"):
            raise ValueError(
                f"{name} must be 'direct', 'rate' or 'dct', got {getattr(config, name)!r}"
            )
    steps = (config.t0, *config.stages)
    if any(t < 1 for t in steps) or list(steps) != sorted(steps, reverse=True):
        raise ValueError(f"t0 and stages must be positive and decreasing, got {steps}")
    if "dct" in (config.encoding, config.faithful_encoding) and any(t % 16 for t in steps):
        raise ValueError(f"DCT coding needs T in multiples of 16, got {steps}")
    if not config.retrain_rules:
        raise ValueError("retrain_rules needs at least one (quantity, threshold)")
    for quantity, threshold in config.retrain_rules:
        if quantity not in QUANTITIES or not 0.0 < threshold <= 1.0:
            raise ValueError(
                f"bad retrain rule ({quantity!r}, {threshold!r}): expected a quantity in "
                f"{QUANTITIES} and a threshold in (0, 1]"
            )
    if any(not 2 <= b <= 32 for b in config.bits):
        raise ValueError(f"bits must lie in [2, 32], got {config.bits}")


def measure(config: SNNPruningConfig) -> list[SeedRun]:
    """Every seed on the one dataset, loaded once, then every seed of the faithful variant;
    one record per (variant, seed)."""
    train = load_dataset(config.dataset, split="train", data_dir=config.data_dir)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir)
    runs = [one_seed(config, train, test, seed) for seed in config.seeds]
    faithful = faithful_config(config)
    for seed in faithful.seeds:
        record = one_seed(faithful, train, test, seed)
        record.faithful = True
        runs.append(record)
    return runs


def _encoder(config: SNNPruningConfig, steps: int) -> Any:
    if config.encoding == "direct":
        return DirectEncoder(steps)
    if config.encoding == "rate":
        return RateEncoder(steps)
    return DCTEncoder(block=4, cycles=steps // 16)


def _train_config(config: SNNPruningConfig, seed: int, epochs: int, *, ann: bool) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=64 if ann else config.ft_batch_size,
        lr=config.ann_lr if ann else config.ft_lr,
        optimizer="adam",
        scheduler="cosine" if ann else "none",
        weight_decay=0.0 if ann else config.weight_decay,
        seed=seed,
        device=config.device,
        progress=False,
    )


def _ann(
    config: SNNPruningConfig, train: TensorDataset, hidden: tuple[int, ...], seed: int
) -> torch.nn.Module:
    seed_everything(seed)
    ann = create_model(
        "mlp", input_shape=train.input_shape, num_classes=train.num_classes, hidden=hidden,
        bias=False,
    )  # fmt: skip
    fit(ann, train, _train_config(config, seed, config.ann_epochs, ann=True))
    return ann.eval()


def _hybrid(
    config: SNNPruningConfig, ann: torch.nn.Module, train: TensorDataset, steps: int, seed: int,
    epochs: int,
) -> EncodedSNN:  # fmt: skip
    """Convert, balance, rescale the output and fine-tune at ``steps``."""
    seed_everything(seed)
    model, _ = convert_ann(
        ann, _encoder(config, steps), train.x[: config.balance_samples],
        leak=config.leak, percentile=config.percentile,
    )  # fmt: skip
    if epochs:
        fit(model, train, _train_config(config, seed, epochs, ann=False))
    return model


def _acc(model: torch.nn.Module, test: TensorDataset, config: SNNPruningConfig) -> float:
    return evaluate(model, test, device=config.device)["accuracy"]


def _params(hidden: tuple[int, ...], d_in: int, k: int) -> int:
    widths = (d_in, *hidden, k)
    return sum(a * b for a, b in zip(widths, widths[1:]))


def one_seed(
    config: SNNPruningConfig, train: TensorDataset, test: TensorDataset, seed: int
) -> SeedRun:
    """Full SNN, widths, retrained narrow SNNs, staged T, quantization and energy on one seed."""
    d_in, k = int(train.x[0].numel()), train.num_classes
    ann = _ann(config, train, config.hidden, seed)
    full = _hybrid(config, ann, train, config.t0, seed, config.ft_epochs)
    record = SeedRun(seed=seed, ann=_acc(ann, test, config), full=_acc(full, test, config))
    record.full_params = _params(config.hidden, d_in, k)
    probe = _encoder(config, config.t0)(train.x[: config.balance_samples])
    for quantity in QUANTITIES:
        for threshold in config.width_thresholds:
            report = significant_widths(full.snn, probe, quantity=quantity, threshold=threshold)
            record.widths[f"{quantity}@{threshold:g}"] = report.widths
    pruned: EncodedSNN | None = None
    for quantity, threshold in config.retrain_rules:
        key = f"{quantity}@{threshold:g}"
        widths = tuple(
            significant_widths(full.snn, probe, quantity=quantity, threshold=threshold).widths
        )
        small_ann = _ann(config, train, widths, seed)
        model = _hybrid(config, small_ann, train, config.t0, seed, config.ft_epochs)
        record.retrained[key] = {
            "widths": list(widths),
            "params": _params(widths, d_in, k),
            "ann": _acc(small_ann, test, config),
            "snn": _acc(model, test, config),
        }
        if pruned is None:
            pruned, pruned_ann = model, small_ann
    assert pruned is not None
    _temporal(config, record, pruned, pruned_ann, train, test, seed)
    for bits in config.bits:
        record.quant_snn[bits] = _acc(quantize_weights(full, bits), test, config)
        record.quant_ann[bits] = _acc(quantize_weights(ann, bits), test, config)
    seed_everything(seed)
    record.energy_full = energy_proxy(full.snn, _encoder(config, config.t0)(test.x))
    final = record.final_model
    seed_everything(seed)
    record.energy_pruned = energy_proxy(final.snn, _encoder(config, config.stages[-1])(test.x))
    record.final_model = None  # not serialized
    return record


def _temporal(
    config: SNNPruningConfig,
    record: SeedRun,
    pruned: EncodedSNN,
    pruned_ann: torch.nn.Module,
    train: TensorDataset,
    test: TensorDataset,
    seed: int,
) -> None:
    """Staged T from the pruned network at T0 vs conversion + fine-tuning at the final T."""

    def train_stage(model: EncodedSNN, steps: int) -> None:
        seed_everything(seed)
        fit(model, train, _train_config(config, seed, config.stage_epochs, ann=False))

    stages = temporal_schedule(pruned, lambda t: _encoder(config, t), config.stages, train_stage)
    record.staged = {t: _acc(m, test, config) for t, m in zip(config.stages, stages)}
    record.staged[config.t0] = _acc(pruned, test, config)
    total = config.stage_epochs * len(config.stages)
    direct = _hybrid(config, pruned_ann, train, config.stages[-1], seed, total)
    record.direct_final = _acc(direct, test, config)
    record.final_model = stages[-1]
