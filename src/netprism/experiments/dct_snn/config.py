"""Config and scales of the ``dct_snn`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DCTSNNConfig:
    """Config of the ``dct_snn`` experiment (defaults = small scale)."""

    main_dataset: str = "digits_tone"
    datasets: tuple[str, ...] = ("digits_tone", "digits")  # every T
    side_datasets: tuple[str, ...] = ("textures",)  # only at side_timesteps
    timesteps: tuple[int, ...] = (16, 32, 48)
    side_timesteps: tuple[int, ...] = (32,)
    hidden: tuple[int, ...] = (256, 256)
    ann_epochs: int = 30
    ann_lr: float = 1e-3
    ft_epochs: int = 5
    ft_lr: float = 1e-3
    ft_batch_size: int = 32
    weight_decay: float = 5e-4
    leak: float = 0.99
    block: int = 4
    balance_samples: int = 512
    percentile: float = 99.9
    keep_bases: tuple[int, ...] = (16, 12, 8, 4)
    near_ann_points: float = 3.0
    min_knob_spearman: float = 0.8
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "datasets": ("digits_tone",),
        "side_datasets": (),
        "timesteps": (16, 32),
        "ann_epochs": 3,
        "ft_epochs": 1,
        "keep_bases": (16, 8),
        "seeds": (0,),
        "balance_samples": 128,
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "ft_epochs": 10},
}
