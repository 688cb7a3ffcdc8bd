"""Config and scales of the ``memorization`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MemorizationConfig:
    """Config of the ``memorization`` experiment (defaults = small scale).

    Per-dataset tuples (``epochs``, ``every``, ``lrs``, ``targets``) align with ``datasets``.
    """

    datasets: tuple[str, ...] = ("digits", "mnist1d")
    dataset: str = ""  # a single dataset replacing ``datasets`` (e.g. your cifar10)
    noise_rates: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)
    seeds: int = 3
    model: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    epochs: tuple[int, ...] = (100, 60)
    every: tuple[int, ...] = (1, 2)
    lrs: tuple[float, ...] = (3e-3, 2e-3)
    targets: tuple[float, ...] = (0.95, 0.80)
    n_probes: int = 10
    h: float = 1e-3
    duplicates: int = 30
    duplicate_kinds: tuple[str, ...] = ("dup_exact", "dup_noise", "dup_shift")
    duplicate_weight_decays: tuple[float, ...] = (0.0, 5e-4)
    fz_models: int = 200
    fz_hidden: tuple[int, ...] = (128,)
    fz_epochs: int = 30
    cleanlab_epochs: int = 30
    n_jobs: int = 0  # 0: min(cores, 4) worker processes
    threads: int = 1  # torch threads per process (0: torch default)
    device: str = "auto"  # training and scoring ("auto": CUDA when present)
    data_dir: str | None = None
    export_csv: bool = False
    progress: bool = True
    seed: int = 0


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "datasets": ("digits",),
        "noise_rates": (0.1,),
        "seeds": 1,
        "hidden": (64,),
        "epochs": (6,),
        "every": (2,),
        "lrs": (3e-3,),
        "targets": (0.95,),
        "n_probes": 2,
        "duplicates": 10,
        "duplicate_kinds": ("dup_exact",),
        "duplicate_weight_decays": (0.0,),
        "fz_models": 6,
        "fz_hidden": (32,),
        "fz_epochs": 3,
        "cleanlab_epochs": 2,
        "n_jobs": 1,
    },
    "small": {},
    "full": {
        "datasets": ("cifar10",),
        "model": "resnet18",
        "epochs": (200,),
        "every": (4,),
        "lrs": (1e-3,),
        "targets": (0.80,),
        "fz_models": 0,
        "cleanlab_epochs": 50,
        "noise_rates": (0.02, 0.10),
        "duplicate_kinds": ("dup_exact",),
        "seeds": 1,
    },
}
