"""What one seed of the ``tofu`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from netprism.federated.rounds import RoundLog


@dataclass
class PrivacyRun:
    """Attacks on one local SGD step of a true batch ``x`` ``(B, *input_shape)``."""

    batch: int
    x: torch.Tensor
    proxy_x: torch.Tensor  # (N, *input_shape), the TOFU message's inputs
    recon: dict[str, torch.Tensor]  # RECON_ROWS -> (B, *input_shape)
    quality: dict[str, Any]  # RECON_ROWS -> {"mse", "psnr"}, plus extras


@dataclass
class SeedRuns:
    """Everything one seed measured."""

    seed: int
    logs: dict[str, RoundLog]
    fidelity: dict[int, list[float]]  # N -> cosines of re-encoded FedAvg updates
    privacy: dict[int, PrivacyRun]  # batch size -> attacks
    n_params: int
