"""What one seed of the ``vrm_ood`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SeedRun:
    """Everything one seed measured."""

    seed: int
    metrics: dict[tuple[str, str], dict[str, float]]  # (detector, set) -> OODMetrics dict
    accuracy: dict[str, float]  # plain / mixup / vrm test accuracy on the K classes
    overhead: dict[str, dict[str, float]]  # detector -> Overhead dict (first seed only)
    in_scores: dict[str, torch.Tensor]  # detector -> (N_in,)
    out_scores: dict[tuple[str, str], torch.Tensor]  # (detector, set) -> (N_out,)
    penultimate: int  # D, the width the head reads
    num_classes: int  # K
    maha_dims: list[int]  # input width D_l of each Mahalanobis layer
