"""Config and scales of the ``hierarchy`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netprism.data.hierarchical import DEFAULT_SCALES

HIER_METHODS = ("sequential", "combined", "bcnn")


@dataclass(frozen=True)
class HierarchyExperimentConfig:
    """Config of the ``hierarchy`` experiment (defaults = small scale)."""

    n_super: int = 4
    n_mid: int = 2
    n_leaf: int = 2
    n_subpops: int = 4
    n_seen: int = 2  # seen subpopulations per class; the rest are unseen
    n_per_subpop: int = 100  # samples per subpopulation in each split
    dim: int = 32
    scales: tuple[float, ...] = DEFAULT_SCALES  # offset norms: super, mid, class, subpop
    noise: float = 1.0
    hidden: tuple[int, ...] = (64, 64, 64)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4  # the official script's value
    methods: tuple[str, ...] = HIER_METHODS  # the flat baseline always runs
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_seen_drop: float = 1.0  # points; "loses no more than 1 point on seen ones"
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models
    device: str = "auto"  # training and prediction; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"n_per_subpop": 20, "epochs": 5, "hidden": (32, 32), "seeds": (0, 1)},
    "small": {},
    "full": {
        "n_per_subpop": 500,
        "epochs": 60,
        "hidden": (256, 256, 256),
        "seeds": tuple(range(10)),
    },
}
