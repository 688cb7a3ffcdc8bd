"""What the ``dct_snn`` experiment measures: per dataset, every encoder, T, stage and seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from netprism.core.results import mean_std

STAGES = ("conv", "ft")
KINDS = ("dct", "rate")


@dataclass
class DatasetRuns:
    """Accuracies (fractions) of one dataset over encoders, T, stages and seeds."""

    dataset: str
    timesteps: tuple[int, ...]
    test_x: torch.Tensor
    ann: list[float] = field(default_factory=list)
    acc: dict[str, list[float]] = field(default_factory=dict)  # "dct/16/ft" -> per seed
    thresholds: dict[str, list[list[float]]] = field(default_factory=dict)  # "dct/16"
    knob: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> K -> acc
    example_snn: Any = None
    faithful: bool = False  # a run of the faithful variant (dct_beats_rate_faithful)

    def add(
        self, kind: str, t: int, seed: int, conv: float, ft: float, thresholds: list[float]
    ) -> None:
        """Record one seed's accuracy after conversion and after fine-tuning at ``t``."""
        for stage, value in zip(STAGES, (conv, ft)):
            self.acc.setdefault(f"{kind}/{t}/{stage}", []).append(value)
        self.thresholds.setdefault(f"{kind}/{t}", []).append(thresholds)

    def points(self, kind: str, t: int, stage: str = "ft") -> tuple[float, float]:
        """Mean and std over seeds of one encoder's accuracy at ``t``, in points."""
        return mean_std([100.0 * v for v in self.acc[f"{kind}/{t}/{stage}"]])

    def paired_gaps(self, t: int, stage: str = "ft") -> list[float]:
        """DCT - rate accuracy at ``t`` per seed, in points (paired: same seed, same ANN)."""
        dct, rate = self.acc[f"dct/{t}/{stage}"], self.acc[f"rate/{t}/{stage}"]
        return [100.0 * (d - r) for d, r in zip(dct, rate)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (no test images, no model)."""
        return {
            "faithful": self.faithful,
            "timesteps": list(self.timesteps),
            "ann": self.ann,
            "acc": self.acc,
            "thresholds": self.thresholds,
            "knob": {str(s): {str(k): v for k, v in d.items()} for s, d in self.knob.items()},
        }


@dataclass
class Measured:
    """Everything the study measures: the per-dataset runs, the coding diagnostics and the
    faithful variant's runs (``None`` without faithful seeds)."""

    runs: list[DatasetRuns]
    recon: dict[str, float]  # dataset -> max reconstruction error of one DCT cycle
    stats: dict[str, dict[str, float]]  # dataset -> coding_statistics(...) at the smallest T
    coding: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)  # at every T
    faithful: DatasetRuns | None = None
