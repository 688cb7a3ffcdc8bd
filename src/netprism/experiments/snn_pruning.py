"""``snn_pruning``: spatial (PCA widths) and temporal (staged T) pruning, quantization, energy.

Chowdhury, Garg & Roy, "Spatio-Temporal Pruning and Quantization for Low-latency Spiking Neural
Networks", IJCNN 2021, arXiv 2104.12528 (abstract only; the recipe is our design, see
:mod:`netprism.spiking.pruning`). In our calibration on digits the membrane *after* the reset
needed 216 of 256 dimensions and failed the target.

Per seed, on digits with direct (analog) input coding:

1. an MLP ``64-256-256-10`` without biases is trained (Adam 1e-3, cosine), converted
   (:mod:`netprism.spiking.network`) and fine-tuned at ``T0 = 32``;
2. PCA widths of every hidden layer from the time-averaged membrane before the reset (the
   claimed rule) and, for comparison, after the reset, the spike rate and the input current,
   at 99 % and 99.9 %; the narrower networks of ``retrain_rules`` are trained from scratch
   through the same pipeline;
3. the first retrained (pruned) network is taken from ``T0`` down the ``stages`` (16 -> 8 -> 4),
   each stage fine-tuned from the previous, against converting and fine-tuning directly at the
   final T for the same total number of epochs;
4. post-training weight quantization (8 .. 2 bits) of the full SNN and of its ANN;
5. the energy proxy of the full SNN at ``T0`` and of the pruned SNN at the final T, against the
   ANN (45 nm: MAC 4.6 pJ, AC 0.9 pJ).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.experiments._snn_pruning_report import SeedRun, claims_and_metrics, plot_all
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
from netprism.io import atomic_write_text
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


@dataclass(frozen=True)
class SNNPruningConfig:
    """Config of the ``snn_pruning`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    encoding: str = "direct"  # "direct", "rate" or "dct"
    hidden: tuple[int, ...] = (256, 256)
    ann_epochs: int = 30
    ann_lr: float = 1e-3
    t0: int = 32
    stages: tuple[int, ...] = (16, 8, 4)
    ft_epochs: int = 5
    stage_epochs: int = 3
    ft_lr: float = 1e-3
    ft_batch_size: int = 32
    weight_decay: float = 5e-4
    leak: float = 0.99
    balance_samples: int = 512
    percentile: float = 99.9
    width_thresholds: tuple[float, ...] = (0.99, 0.999)
    retrain_rules: tuple[tuple[str, float], ...] = (("membrane", 0.999), ("membrane", 0.99))
    bits: tuple[int, ...] = (8, 7, 6, 5, 4, 3, 2)
    min_param_ratio: float = 2.0
    max_drop_points: float = 2.0
    max_quant_loss_points: float = 1.0
    quant_bits_floor: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden": (64, 64),
        "ann_epochs": 3,
        "t0": 8,
        "stages": (4, 2),
        "ft_epochs": 1,
        "stage_epochs": 1,
        "retrain_rules": (("membrane", 0.99),),
        "bits": (8, 4, 2),
        "balance_samples": 128,
        "seeds": (0,),
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "ft_epochs": 10, "stage_epochs": 5},
}


@register_experiment(
    "snn_pruning",
    config=SNNPruningConfig,
    scales=SCALES,
    demo=False,
    paper="Chowdhury, Garg & Roy, Spatio-Temporal Pruning and Quantization for Low-latency "
    "Spiking Neural Networks (IJCNN 2021, arXiv 2104.12528)",
)
def run(config: SNNPruningConfig, *, out_dir: Path | None = None) -> Result:
    """Every seed: full SNN, widths, retrained narrow SNNs, staged T, quantization, energy."""
    _validate(config)
    train = load_dataset(config.dataset, split="train", data_dir=config.data_dir)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir)
    with torch_threads(config.threads):
        runs = [_one_seed(config, train, test, seed) for seed in config.seeds]
    claims, metrics, baselines = claims_and_metrics(runs, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, config, Path(out_dir))
        data = {str(r.seed): r.to_dict() for r in runs}
        atomic_write_text(Path(out_dir) / "snn_pruning_runs.json", json.dumps(data, indent=1))
    return seeded_result(
        "snn_pruning", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: SNNPruningConfig) -> None:
    check_seeds(config.seeds)
    if config.encoding not in ("direct", "rate", "dct"):
        raise ValueError(f"encoding must be 'direct', 'rate' or 'dct', got {config.encoding!r}")
    steps = (config.t0, *config.stages)
    if any(t < 1 for t in steps) or list(steps) != sorted(steps, reverse=True):
        raise ValueError(f"t0 and stages must be positive and decreasing, got {steps}")
    if config.encoding == "dct" and any(t % 16 for t in steps):
        raise ValueError(f"DCT coding needs T in multiples of 16, got {steps}")
    if not config.retrain_rules:
        raise ValueError("retrain_rules needs at least one (quantity, threshold)")
    for quantity, threshold in config.retrain_rules:
        if quantity not in QUANTITIES or not 0.0 < threshold <= 1.0:
            raise ValueError(f"bad retrain rule ({quantity!r}, {threshold!r})")
    if any(not 2 <= b <= 32 for b in config.bits):
        raise ValueError(f"bits must lie in [2, 32], got {config.bits}")


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


def _one_seed(
    config: SNNPruningConfig, train: TensorDataset, test: TensorDataset, seed: int
) -> SeedRun:
    d_in, k = int(train.x[0].numel()), train.num_classes
    ann = _ann(config, train, config.hidden, seed)
    full = _hybrid(config, ann, train, config.t0, seed, config.ft_epochs)
    run = SeedRun(seed=seed, ann=_acc(ann, test, config), full=_acc(full, test, config))
    run.full_params = _params(config.hidden, d_in, k)
    probe = _encoder(config, config.t0)(train.x[: config.balance_samples])
    for quantity in QUANTITIES:
        for threshold in config.width_thresholds:
            report = significant_widths(full.snn, probe, quantity=quantity, threshold=threshold)
            run.widths[f"{quantity}@{threshold:g}"] = report.widths
    pruned: EncodedSNN | None = None
    for quantity, threshold in config.retrain_rules:
        key = f"{quantity}@{threshold:g}"
        widths = tuple(
            significant_widths(full.snn, probe, quantity=quantity, threshold=threshold).widths
        )
        small_ann = _ann(config, train, widths, seed)
        model = _hybrid(config, small_ann, train, config.t0, seed, config.ft_epochs)
        run.retrained[key] = {
            "widths": list(widths),
            "params": _params(widths, d_in, k),
            "ann": _acc(small_ann, test, config),
            "snn": _acc(model, test, config),
        }
        if pruned is None:
            pruned, pruned_ann = model, small_ann
    assert pruned is not None
    _temporal(config, run, pruned, pruned_ann, train, test, seed)
    for bits in config.bits:
        run.quant_snn[bits] = _acc(quantize_weights(full, bits), test, config)
        run.quant_ann[bits] = _acc(quantize_weights(ann, bits), test, config)
    seed_everything(seed)
    run.energy_full = energy_proxy(full.snn, _encoder(config, config.t0)(test.x))
    final = run.final_model
    seed_everything(seed)
    run.energy_pruned = energy_proxy(final.snn, _encoder(config, config.stages[-1])(test.x))
    run.final_model = None  # not serialized
    return run


def _temporal(
    config: SNNPruningConfig,
    run: SeedRun,
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
    run.staged = {t: _acc(m, test, config) for t, m in zip(config.stages, stages)}
    run.staged[config.t0] = _acc(pruned, test, config)
    total = config.stage_epochs * len(config.stages)
    direct = _hybrid(config, pruned_ann, train, config.stages[-1], seed, total)
    run.direct_final = _acc(direct, test, config)
    run.final_model = stages[-1]
