"""Config and scales of the ``memorization_grid`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netprism.memorization.names import DEFAULT_EVERY, DEFAULT_H, DEFAULT_N_PROBES

#: Noise kinds: symmetric, pair-flip (class c -> c + 1) and instance-dependent (each flipped
#: sample to the class an out-of-fold linear model confuses it with most).
NOISE_KINDS = ("symmetric", "pairflip", "instance")
#: ``mlp``: ReLU MLP 256-256; ``mlp_gelu``: the same with GELU (a smooth network, whose input
#: Hessian is not only the Gauss-Newton term); ``lenet``: LeNet (image datasets only).
ARCHS = ("mlp", "mlp_gelu", "lenet")
IMAGE_DATASETS = ("digits", "digits_tone")
#: Every detector the grid measures; ``aum`` is the frozen default of ``find_label_issues``.
GRID_METHODS = (
    "curvature", "csl", "loss", "ssft", "learning_time", "aum", "forgetting",
    "cartography_confidence", "confident_learning", "entropy",
)  # fmt: skip


@dataclass(frozen=True)
class GridConfig:
    """Config of the ``memorization_grid`` experiment (defaults = small scale).

    Every cell (dataset, architecture, noise kind, rate, seed) trains once with the one-call
    recipe (``memorization.default_config(epochs)``, 100 epochs, and the library's curvature
    defaults: h = 1e-2, 10 probes, every 2nd epoch), plus the extra trainings of SSFT and
    confident learning.  To fit the small scale in about 30 minutes on 2 cores, every dataset
    is cut to its first ``max_samples`` training samples and confident learning uses
    ``cl_folds`` folds (the library's default is 5); these are the grid's settings, fixed
    before its first run.  The first small run, with 3 seeds, took 2,634 s (44 min, the
    machine shared with other work); the small scale has run 2 seeds since (fixed before
    its next run, for the time budget alone); the full scale keeps 3.
    """

    datasets: tuple[str, ...] = ("digits", "mnist1d", "digits_tone")
    archs: tuple[str, ...] = ARCHS
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    rates: tuple[float, ...] = (0.05, 0.2)
    seeds: tuple[int, ...] = (0, 1, 2)
    max_samples: int = 1347  # digits' training split; MNIST-1D is cut to the same size
    epochs: int = 100
    every: int = DEFAULT_EVERY
    n_probes: int = DEFAULT_N_PROBES
    h: float = DEFAULT_H
    ssft_epochs: int = 20  # the second split, after ``epochs`` on the first
    cl_folds: int = 2
    near_best: float = 0.01  # grid_default_near_best: within this AUROC of the best method
    moonshot: float = 0.005
    warn_below: float = 0.8  # memorization_warning: must fire below this curvature AUROC
    quiet_above: float = 0.95  # ... and stay quiet above this one
    workers: int = 2  # cells run in worker processes, one torch thread each
    threads: int = 1
    device: str = "auto"  # "auto": CUDA when present
    data_dir: str | None = None


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "datasets": ("digits",),
        "archs": ("mlp", "lenet"),
        "noise_kinds": ("symmetric", "instance"),
        "rates": (0.2,),
        "seeds": (0,),
        "max_samples": 300,
        "epochs": 3,
        "every": 1,
        "n_probes": 1,
        "ssft_epochs": 2,
        "workers": 1,
    },
    "small": {"seeds": (0, 1)},
    "full": {
        "max_samples": 4000,
        "epochs": 100,
        "every": 1,
        "n_probes": 10,
        "cl_folds": 5,
        "ssft_epochs": 20,
        "device": "auto",
    },  # fmt: skip
}
