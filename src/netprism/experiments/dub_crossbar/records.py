"""What one seed of the ``dub_crossbar`` experiment measures: the dense model and every
pruned arm."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Arm:
    """One pruned (or the dense) model: accuracy in %, sparsity, ADC savings, level histogram."""

    acc: float
    acc_before_ft: float
    sparsity: float
    saving_exp2: float
    saving_linear: float
    histogram: dict[str, int]  # "zero", "0", ..., "K" -> crossbars
    threshold: float
    crossbars: int
    base_bits: int

    def to_dict(self) -> dict[str, Any]:
        """The arm as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass
class SeedRun:
    """Every arm of one seed and D.U.B.'s regularizer history."""

    seed: int
    arms: dict[tuple[str, float], Arm]  # (method, target sparsity) -> arm; ("dense", 0.0)
    reg_history: list[float]  # mean Hoyer variance per D.U.B. epoch

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record: arms keyed ``"method@sparsity"``."""
        arms = {f"{m}@{s:g}": a.to_dict() for (m, s), a in self.arms.items()}
        return {"seed": self.seed, "reg_history": self.reg_history, "arms": arms}
