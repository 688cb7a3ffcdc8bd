"""Config and scales of the ``space`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("space", "gpm", "finetune")


@dataclass(frozen=True)
class SPACEExperimentConfig:
    """Config of the ``space`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    n_tasks: int = 5
    hidden: tuple[int, ...] = (100, 100)
    epochs: int = 5
    retrain_epochs: int = 5
    batch_size: int = 10
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    var_kept: tuple[float, ...] = (0.95, 0.99)  # one per hidden layer (or one value)
    rule: str = "below"
    samples: int = 300
    gpm_threshold: tuple[float, ...] = (0.95, 0.99, 0.99)  # hidden layers + shared head
    streams: tuple[str, ...] = ("permuted", "split")
    max_gap_to_gpm: float = 5.0  # points; "ACC within a few points of GPM" (spec 6.2)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 1, "retrain_epochs": 1, "batch_size": 32, "samples": 100, "seeds": (0,)},
    "small": {},
    "full": {"seeds": tuple(range(10))},
}
