"""What the ``hierarchy`` experiment measures: per seed, and for the faithful twin."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class MethodRun:
    """One method on one seed, evaluated with its finest head."""

    seen_acc: float  # points
    unseen_acc: float
    seen_dist: float  # catastrophic coefficient (mean graphical distance, all samples)
    unseen_dist: float
    unseen_edges: dict[str, int]  # "parent>child" -> unseen mistakes crossing that edge
    final_train_loss: float
    # unseen accuracy (points) of the finest head's prediction read at each level: its
    # superclass, its mid node, its class
    unseen_level_acc: list[float] = field(default_factory=list)
    best_epoch: int | None = None  # the epoch kept on validation (None: the last epoch)

    @property
    def edges_per_mistake(self) -> float:
        """Mean tree edges an unseen mistake crosses (``nan`` without mistakes)."""
        error = 1.0 - self.unseen_acc / 100.0
        return self.unseen_dist / error if error > 0 else math.nan

    @property
    def shift_ratio(self) -> float:
        """Unseen over seen accuracy (1: no shift)."""
        return self.unseen_acc / self.seen_acc if self.seen_acc > 0 else math.nan


@dataclass
class SeedRun:
    seed: int
    methods: dict[str, MethodRun]


@dataclass
class FaithfulRecord:
    """``hier_shift_accuracy_faithful``: the calibration of the subpopulation offset, its
    outcome, then flat and sequential models on the claim seeds at every grid value."""

    calibration: dict[float, list[SeedRun]]  # grid value -> flat model per calibration seed
    chosen: float | None  # s*, the smallest qualifying grid value; None: none qualifies
    grid: dict[float, list[SeedRun]]  # grid value -> flat + sequential per claim seed


@dataclass
class HierarchyRecords:
    """Everything one run measures: the reproduced per-seed runs and the faithful twin's."""

    runs: list[SeedRun]
    faithful: FaithfulRecord | None  # None: the twin did not run (no faithful_seeds)


def flat_profile(runs: list[SeedRun]) -> tuple[float, float]:
    """The flat model's shift, averaged over seeds: (unseen / seen accuracy, edges per unseen
    mistake); what the faithful twin's calibration compares with the paper's."""
    flats = [r.methods["flat"] for r in runs]
    ratio = sum(f.shift_ratio for f in flats) / len(flats)
    return ratio, sum(f.edges_per_mistake for f in flats) / len(flats)
