"""Config and scales of the ``vrm_ood`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAR_SETS = ("gaussian", "uniform")
NEAR_SETS = ("held_out", "inverted", "shuffled", "rotated", "mnist1d")
MODELS = ("mlp", "lenet")


@dataclass(frozen=True)
class VRMOODConfig:
    """Config of the ``vrm_ood`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    in_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    model: str = "mlp"
    hidden: tuple[int, ...] = (128, 64)  # MLP only
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    alpha: float = 1.0  # Beta(alpha, alpha) of the intra-class mixup
    noise_std: float = 1.0  # inferred: n ~ N(0, noise_std^2 I) for the auxiliary class
    aux_target: str = "hard"  # inferred: "hard" (variant A) or "soft" (variant B)
    aux_lambda_max: float = 0.5  # inferred (variant A): at least half noise
    noise_fraction: float = 0.5  # auxiliary samples per real sample in a batch
    vrm_score: str = "aux"  # "aux" (p_K) or "max_in" (1 - max_{k<K} p_k)
    odin_temperature: float = 1000.0
    odin_epsilon: float = 0.002
    mahalanobis_layers: tuple[str, ...] = ("head",)  # inputs of these layers
    n_noise: int = 500
    near_sets: tuple[str, ...] = NEAR_SETS
    seeds: tuple[int, ...] = (0, 1, 2)
    auroc_target: float = 0.95
    fpr95_target: float = 0.2
    max_auroc_drop: float = 0.02
    timing_inputs: int = 1000
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models
    device: str = "auto"  # training and scoring; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 2,
        "seeds": (0,),
        "n_noise": 60,
        "near_sets": ("held_out", "inverted"),
        "timing_inputs": 100,
    },
    "small": {},
    "full": {"seeds": tuple(range(5)), "epochs": 60},
}
