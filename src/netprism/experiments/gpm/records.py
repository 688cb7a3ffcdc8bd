"""What one seed of the ``gpm`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from netprism.continual.runner import StreamResult


@dataclass
class SeedRuns:
    """Everything measured on one seed's stream."""

    seed: int
    streams: dict[str, StreamResult]  # method -> R (T, T) as fractions
    joint: Tensor  # (T,) test accuracy per task after joint training
    sweep: dict[float, StreamResult]  # GPM with one threshold on every layer
    memory: list[dict[str, int]]  # GPM memory columns per layer after each task
    fan_in: dict[str, int]  # D per protected layer
