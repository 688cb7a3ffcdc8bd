"""Config and scales of the ``hybrid_net`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DATASETS = ("mnist1d", "digits")


@dataclass(frozen=True)
class HybridNetConfig:
    """Config of the ``hybrid_net`` experiment (defaults = small scale).

    ``datasets[0]`` is the claims' dataset; ``epochs`` / ``batch_size`` hold one value per
    dataset (or one for all); ``seeds`` apply to the first dataset, ``context_seeds`` to the
    others.
    """

    datasets: tuple[str, ...] = ("mnist1d", "digits")
    epochs: tuple[int, ...] = (20, 10)
    batch_size: tuple[int, ...] = (128, 64)
    lr: float = 3e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    context_seeds: tuple[int, ...] = (0, 1, 2)
    widths: tuple[int, ...] = (32, 64, 64, 128, 128)
    bits: tuple[int, ...] = (2, 4)  # Hybrid-Net precisions; the first is the claim's
    control_bits: int = 2  # every hidden layer at this precision (control)
    threshold: float = 0.99
    where: str = "pre"  # "pre": conv outputs before BN; "post": quantized activations
    pca_samples: int = 1000
    train_samples: int | None = None  # cap on training samples (tiny scale)
    test_samples: int | None = None
    min_gain: float = 3.0  # points over XNOR
    min_fraction: float = 0.65  # of XNOR's energy efficiency
    paper_fraction: float = 0.94
    device: str = "auto"
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": (1,),
        "batch_size": (64,),
        "widths": (4, 8, 8, 8, 8),
        "train_samples": 256,
        "test_samples": 128,
        "pca_samples": 128,
        "context_seeds": (0,),
    },
    "small": {},
    "full": {"epochs": (20, 30), "seeds": (0, 1, 2, 3, 4), "context_seeds": (0, 1, 2, 3, 4)},
}
