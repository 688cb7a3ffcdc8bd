"""What one seed of the ``space`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass

from netprism.continual.runner import StreamResult


@dataclass
class StreamRuns:
    """Every method on one stream of one seed, and SPACE's bookkeeping."""

    kind: str  # "permuted" or "split"
    results: dict[str, StreamResult]
    units: list[dict[str, int]]  # SPACE units per layer after each task
    widths: dict[str, int]
    mac_fraction: list[float]  # per task: sub-network MACs / full-network MACs
    pairs: int  # (old task, later task) logit comparisons
    identical_pairs: int
    max_abs_diff: float


@dataclass
class SeedRuns:
    """Every stream of one seed."""

    seed: int
    streams: dict[str, StreamRuns]
