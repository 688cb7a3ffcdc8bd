"""What one seed of the ``tofu`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from netprism.federated.rounds import RoundLog


@dataclass
class PrivacyRun:
    """Attacks on ``local_steps`` local SGD steps of batches of ``batch`` true images ``x``
    ``(batch * local_steps, *input_shape)``, from the global weights of round ``round``."""

    batch: int
    x: torch.Tensor
    proxy_x: torch.Tensor  # (N, *input_shape), the TOFU message's inputs
    recon: dict[str, torch.Tensor]  # RECON_ROWS present -> (len(x), *input_shape)
    quality: dict[str, Any]  # RECON_ROWS present -> {"mse", "psnr"}, plus extras
    local_steps: int = 1  # K; the reproduced privacy runs: 1
    round: int = 0  # the reproduced privacy runs: 0 (the initial weights)


@dataclass
class SeedRuns:
    """Everything one seed measured."""

    seed: int
    logs: dict[str, RoundLog]
    fidelity: dict[int, list[float]]  # N -> cosines of re-encoded FedAvg updates
    privacy: dict[int, PrivacyRun]  # batch size -> attacks (the privacy claim)
    n_params: int
    # (round, K) -> attacks on K-step updates (the privacy_faithful twin only)
    privacy_faithful: dict[tuple[int, int], PrivacyRun] = field(default_factory=dict)
