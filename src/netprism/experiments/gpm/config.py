"""Config and scales of the ``gpm`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("finetune", "ewc", "agem", "gpm")


@dataclass(frozen=True)
class GPMExperimentConfig:
    """Config of the ``gpm`` experiment (defaults = small scale, the calibration recipe)."""

    dataset: str = "digits"
    n_tasks: int = 5
    hidden: tuple[int, ...] = (100, 100)
    epochs: int = 5
    batch_size: int = 10
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    threshold: tuple[float, ...] = (0.95, 0.99, 0.99)  # one per protected layer (or one value)
    samples: int = 300
    rule: str = "below"
    ewc_lam: float = 30.0  # lam >= 100 diverges (ACC 10) on most seeds under SGD lr 0.05
    ewc_fisher_samples: int = 200
    agem_memory: int = 100
    agem_ref_batch: int = 256
    sweep_thresholds: tuple[float, ...] = (0.90, 0.95, 0.97, 0.99, 0.999)
    min_acc_gap: float = 15.0  # points, GPM ACC - fine-tuning ACC
    min_gpm_bwt: float = -10.0  # points
    max_finetune_bwt: float = -25.0  # points
    min_spearman: float = 0.8
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models, 0 = torch default


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "n_tasks": 3,
        "epochs": 1,
        "batch_size": 32,
        "ewc_fisher_samples": 50,
        "samples": 100,
        "seeds": (0,),
        "sweep_thresholds": (0.9, 0.999),
    },
    "small": {},
    "full": {"n_tasks": 5, "seeds": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
}
