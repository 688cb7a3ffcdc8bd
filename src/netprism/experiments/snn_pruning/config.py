"""Config and scales of the ``snn_pruning`` experiment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


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
    # spatial_compression_faithful and energy_ratio_faithful (pre-registered before their first
    # run, targets unchanged): the whole pipeline again with spike-coded (rate) input, so the
    # first layer adds input spikes instead of multiplying analog pixels at every step, and the
    # full scale's fine-tuning budget; the width rule stays the claimed membrane@0.999
    faithful_encoding: str = "rate"
    faithful_ft_epochs: int = 10
    faithful_stage_epochs: int = 5
    faithful_seeds: tuple[int, ...] = (0, 1, 2)  # () skips the twins
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1


def faithful_config(config: SNNPruningConfig) -> SNNPruningConfig:
    """The faithful variant's settings: spike-coded input and the longer fine-tuning."""
    return dataclasses.replace(
        config,
        encoding=config.faithful_encoding,
        ft_epochs=config.faithful_ft_epochs,
        stage_epochs=config.faithful_stage_epochs,
        seeds=config.faithful_seeds,
    )


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
        "faithful_ft_epochs": 1,
        "faithful_stage_epochs": 1,
        "faithful_seeds": (0,),
    },
    "small": {"faithful_seeds": ()},  # opt-in there, as every twin (the report names the command)
    "full": {
        "seeds": (0, 1, 2, 3, 4),
        "ft_epochs": 10,
        "stage_epochs": 5,
        "faithful_seeds": (0, 1, 2, 3, 4),
    },  # fmt: skip
}
