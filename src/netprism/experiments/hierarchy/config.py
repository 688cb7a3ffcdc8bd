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
    # hier_shift_accuracy_faithful (pre-registered before its first run, target unchanged): a
    # shift as strong and as deep as the paper's, and the paper's recipe.  The subpopulation
    # offset s* is calibrated on the flat model alone, on seeds that are not claim seeds: the
    # smallest grid value where its unseen / seen accuracy (mean over the calibration seeds)
    # is <= faithful_max_ratio (LIVING-17: 57.02 / 92.30 = 0.62) and its unseen mistakes cross
    # >= faithful_min_edges tree edges on average (LIVING-17: 1.75 / 0.43 = 4.07); none -> the
    # twin is not assessed (NaN), the bounds are never relaxed.  Flat and sequential models are
    # then trained on `faithful_seeds` (the claim seeds) at every grid value (the other offsets
    # stay scales[:3]), SGD lr 0.1, batch 128, each keeping its best epoch on a held-out share
    # of the seen training samples; the claim reads s*, every grid value feeds the mechanism
    # figure
    faithful_subpop_scales: tuple[float, ...] = (2.3, 2.75, 3.25, 3.75, 4.25, 4.75)
    faithful_calibration_seeds: tuple[int, ...] = (100, 101)
    faithful_max_ratio: float = 0.62
    faithful_min_edges: float = 4.0
    faithful_lr: float = 0.1
    faithful_batch_size: int = 128
    faithful_epochs: int = 60
    faithful_val_fraction: float = 0.1
    # the twin's claim seeds; () skips the twin (opt-in at small: about 4.5 of the experiment's
    # 5.5 CPU minutes there)
    faithful_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models
    device: str = "auto"  # training and prediction; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "n_per_subpop": 20,
        "epochs": 5,
        "hidden": (32, 32),
        "seeds": (0, 1),
        "faithful_subpop_scales": (2.3, 4.75),
        "faithful_calibration_seeds": (100,),
        "faithful_epochs": 2,
        "faithful_seeds": (0, 1),
    },
    "small": {"faithful_seeds": ()},
    "full": {
        "n_per_subpop": 500,
        "epochs": 60,
        "hidden": (256, 256, 256),
        "seeds": tuple(range(10)),
        "faithful_seeds": tuple(range(10)),
    },
}
