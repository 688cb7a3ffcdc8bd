"""What one seed of the ``hierarchy`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MethodRun:
    """One method on one seed, evaluated with its finest head."""

    seen_acc: float  # points
    unseen_acc: float
    seen_dist: float  # catastrophic coefficient (mean graphical distance, all samples)
    unseen_dist: float
    unseen_edges: dict[str, int]  # "parent>child" -> unseen mistakes crossing that edge
    final_train_loss: float


@dataclass
class SeedRun:
    seed: int
    methods: dict[str, MethodRun]
