"""Config and scales of the ``train`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainExperimentConfig:
    """Config of the ``train`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    model: str = "mlp"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    target_accuracy: float = 0.95
    progress: bool = False
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models, 0 = torch default
    checkpoint_dir: str | None = None  # a checkpoint after every epoch (safetensors + JSON)
    resume: bool = False  # continue from the newest checkpoint in checkpoint_dir


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 3, "target_accuracy": 0.5},
    "small": {},
    "full": {
        "dataset": "mnist",
        "model": "lenet",
        "epochs": 20,
        "target_accuracy": 0.99,
        "threads": 0,
    },
}
