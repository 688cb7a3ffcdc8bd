"""Config and scales of the ``tofu`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MALFORMED = ("nan", "wrong_shape", "huge_norm")


@dataclass(frozen=True)
class TOFUExperimentConfig:
    """Config of the ``tofu`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    n_clients: int = 5
    alpha: float | None = None  # None: IID clients; else Dirichlet(alpha) label skew
    hidden: tuple[int, ...] = (32,)
    rounds: int = 60
    full_rounds: int = 10  # hybrid: the last rounds send full-precision updates
    local_epochs: int = 1
    lr: float = 0.1
    batch_size: int = 32
    n_proxy: int = 8
    encoder_steps: int = 100
    encoder_lr: float = 0.1
    downlink: str = "full"  # or "tofu": the server encodes the aggregate too
    fidelity_proxies: tuple[int, ...] = (2, 8, 32)
    fidelity_rounds: tuple[int, ...] = (0, 20, 40)  # FedAvg rounds whose updates are re-encoded
    attack_batch: int = 4
    ig_steps: int = 500
    ig_lr: float = 0.1
    tv_weight: float = 1e-2
    dlg_steps: int = 30
    aggregator: str = "median"  # robust rule of the bad-client run
    malformed: str = "nan"  # the malformed client's fault: nan, wrong_shape or huge_norm
    max_norm: float = 1e3
    seeds: tuple[int, ...] = (0, 1, 2)
    min_fidelity: float = 0.8
    decode_tol: float = 1e-6
    min_comm_ratio: float = 2.0
    max_acc_gap: float = 3.0  # points, hybrid vs FedAvg
    min_mse_ratio: float = 3.0  # privacy: TOFU-attack MSE / real-attack MSE
    max_bad_gap: float = 2.0  # points, robust run with bad clients vs the clean run
    # privacy_faithful (pre-registered before its first run, target unchanged: min_mse_ratio,
    # Inverting Gradients at B = attack_batch): the attacked update is K local SGD steps (lr,
    # no momentum) from a round's global weights, each step on a fresh batch of attack_batch
    # images of client 0 (attack_batch * K images in all), K swept over privacy_local_steps;
    # the encoder is unchanged and the attacker keeps its one-step model (it reconstructs
    # attack_batch * K images from -update / (K lr), each scored against its closest true
    # image). Rounds: 0 (the initial weights) and FedAvg's round-20 weights. The claim is
    # read at K = privacy_faithful_k (the local steps per round of the federated arms, about
    # 270 samples / batch 32) at round 0; seeds are `faithful_seeds` (among `seeds`: the twin
    # attacks each seed's own FedAvg weights); () skips the twin (opt-in at small: about 3 of
    # the experiment's 11 CPU minutes there).
    privacy_local_steps: tuple[int, ...] = (1, 3, 9, 27)
    privacy_faithful_k: int = 9
    privacy_rounds: tuple[int, ...] = (0, 20)
    faithful_seeds: tuple[int, ...] = (0, 1, 2)
    # Local training and test evaluation run here; the wire vectors, TOFU's encoder and the
    # attacks (optimizing inputs, not weights) stay on the CPU.
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "n_clients": 3,
        "rounds": 3,
        "full_rounds": 1,
        "encoder_steps": 10,
        "fidelity_proxies": (2, 8),
        "fidelity_rounds": (0,),
        "ig_steps": 20,
        "dlg_steps": 2,
        "seeds": (0,),
        "privacy_local_steps": (1, 2),
        "privacy_faithful_k": 2,
        "privacy_rounds": (0, 2),
        "faithful_seeds": (0,),
    },
    "small": {"faithful_seeds": ()},
    "full": {
        "seeds": (0, 1, 2, 3, 4),
        "rounds": 100,
        "full_rounds": 10,
        "encoder_steps": 300,
        "faithful_seeds": (0, 1, 2, 3, 4),
    },
}
