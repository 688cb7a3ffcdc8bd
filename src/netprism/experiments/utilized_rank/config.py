"""Config and scales of the ``utilized_rank`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAPER = "Garg et al., Revealing the Utilized Rank of Subspaces of Learning, arXiv 2407.04797"


@dataclass(frozen=True)
class UtilizedRankConfig:
    """Config of the ``utilized_rank`` experiment (defaults = small scale)."""

    widths: tuple[int, ...] = (64, 256, 1024)  # MLP 40-w-w-10; the last one is compressed
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds of the compressed (widest) model
    num_samples: int = 12000  # MNIST-1D samples generated, half train / half test
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    threshold: float = 0.99  # energy threshold of the utilization and comparison claims
    thresholds: tuple[float, ...] = (0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
    finetune_epochs: int = 5
    finetune_lr: float = 3e-4
    max_drop: float = 0.01  # params_at_drop: accuracy drop allowed after fine-tuning
    target_fraction: float = 0.25  # the paper: ViT-L/16 to 25 % of its parameters
    preserve_tol: float = 1e-6  # rank_preserves_function: max |d logit| / max |logit|
    vit_dims: tuple[int, ...] = (32, 128)  # small-ViT analogue on digits; () skips it
    vit_epochs: int = 30
    threads: int = 1
    device: str = "auto"  # training, statistics and scoring; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "widths": (16, 32, 64),
        "seeds": (0,),
        "num_samples": 1000,
        "epochs": 2,
        "thresholds": (0.9, 0.99),
        "finetune_epochs": 1,
        "vit_dims": (16, 32),
        "vit_epochs": 1,
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "threads": 0},
}
