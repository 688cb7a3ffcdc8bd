"""What one cell of the ``memorization_grid`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    dataset: str
    arch: str
    noise: str
    rate: float
    seed: int

    @property
    def row(self) -> str:
        """The heat-map row this cell averages into (all but the seed)."""
        return f"{self.dataset} / {self.arch} / {self.noise} {self.rate:.0%}"


@dataclass
class CellRun:
    cell: Cell
    auroc: dict[str, float]  # method -> AUROC against the flipped labels
    precision: dict[str, float]  # method -> precision at the true count
    train_accuracy: float  # final model, given (noisy) labels
    warned: bool  # the one call raised MemorizationPremiseWarning
    # one_call (its parts one_call_train, one_call_curvature, one_call_dynamics), ssft,
    # confident_learning
    seconds: dict[str, float]
