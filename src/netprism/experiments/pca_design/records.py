"""What one seed of the ``pca_design`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netprism.compression.pca_design import DesignReport


@dataclass
class L1Run:
    """The L1-pruned original at the design's MACs, fine-tuned (``info`` of
    :func:`netprism.compression.l1_prune_to_macs` plus the test accuracy)."""

    pruning_ratio: float
    macs: int
    params: int
    mac_error: float  # relative to the designed net's MACs
    accuracy: float  # fraction of the test split


@dataclass
class DesignRun:
    """The design at one variance threshold, retrained from scratch."""

    config: dict[str, Any]  # the designed network's model config
    report: DesignReport
    designed: float  # test accuracy, fraction
    l1: L1Run | None  # None without torch-pruning


@dataclass
class SeedRun:
    """The original network of one seed and its design at every threshold."""

    seed: int
    original: float  # test accuracy, fraction
    designs: dict[float, DesignRun]  # threshold -> design
