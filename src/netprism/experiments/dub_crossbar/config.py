"""Config and scales of the ``dub_crossbar`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODELS = ("digits_cnn", "vgg11")
WIDTHS = (32, 64, 64, 128, 128)  # conv widths of the calibration's digits CNN
POOL_AFTER = (1, 3)  # 2x2 max pool after these convs


@dataclass(frozen=True)
class DUBCrossbarConfig:
    """Config of the ``dub_crossbar`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    model: str = "digits_cnn"  # or "vgg11" (CIFAR-style, BN)
    size: int = 16  # crossbar rows = columns
    sparsities: tuple[float, ...] = (0.75, 0.875)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 30  # dense training
    lr: float = 3e-3
    batch_size: int = 64
    dub_epochs: int = 10  # regularized training from the dense weights
    lam: float = 1e-3
    finetune_epochs: int = 10  # after D.U.B.'s snap
    baseline_finetune_epochs: int = 20  # magnitude and snap-only: the same post-dense budget
    finetune_lr: float = 1e-3
    train_samples: int = 0  # 0: the whole training split
    linear_a: float = 1.0  # linear (SAR) ADC model E = a * bits + c
    linear_c: float = 0.0
    min_ratio: float = 2.0  # D.U.B. saving / magnitude saving, exp2 model
    max_acc_drop: float = 1.0  # points below dense
    vgg_sizes: tuple[int, ...] = (32, 64, 128, 256)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 2,
        "dub_epochs": 1,
        "finetune_epochs": 1,
        "baseline_finetune_epochs": 1,
        "train_samples": 256,
        "seeds": (0,),
    },
    "small": {},
    # The paper's setting (VGG11, CIFAR-10 from --data-dir, 64x64 crossbars) with a shorter
    # Adam schedule than its 160-epoch SGD one; not run on CPU.
    "full": {
        "model": "vgg11",
        "dataset": "cifar10",
        "size": 64,
        "seeds": (0, 1, 2),
        "epochs": 60,
        "batch_size": 128,
        "dub_epochs": 20,
        "finetune_epochs": 20,
        "baseline_finetune_epochs": 40,
        "device": "auto",
    },
}
