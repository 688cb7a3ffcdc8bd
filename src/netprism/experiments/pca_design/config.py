"""Config and scales of the ``pca_design`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PCADesignConfig:
    """Config of the ``pca_design`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    data_dir: str | None = None
    depth: int = 11
    width_mult: float = 0.5
    thresholds: tuple[float, ...] = (0.999, 0.99)
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.05
    finetune_lr: float = 0.01
    weight_decay: float = 5e-4
    seeds: tuple[int, ...] = (0, 1, 2)
    max_drop: float = 1.0  # accuracy points (the paper's "< 1 %")
    apply_depth_rule: bool = True
    device: str = "auto"
    threads: int = 1  # 1 is fastest for these tiny models; 0 = torch default


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"width_mult": 0.125, "epochs": 1, "seeds": (0,), "thresholds": (0.999,)},
    "small": {},
    "full": {"dataset": "cifar10", "depth": 16, "width_mult": 1.0, "epochs": 60, "threads": 0},
}
