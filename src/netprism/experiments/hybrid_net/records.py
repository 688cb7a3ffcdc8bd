"""What one dataset and seed of the ``hybrid_net`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netprism.compression.hybrid import SignificantLayers


@dataclass
class SeedRun:
    """Every configuration of one dataset and seed."""

    dataset: str
    seed: int
    layers: list[str]
    precisions: dict[str, tuple[int, ...]]  # model key -> bits per layer
    accuracy: dict[str, float]  # fractions
    energy: dict[str, dict[str, float]]  # model key -> compare_energy(...)
    layer_energy_pj: dict[str, list[float]]
    macs: list[int]
    significant: SignificantLayers
    significant_other: SignificantLayers  # the other lens ("post" when selecting on "pre")
    trainings: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (precisions as lists, PCA reports as dicts)."""
        d = dict(self.__dict__)
        d["precisions"] = {k: list(v) for k, v in self.precisions.items()}
        d["significant"] = self.significant.to_dict()
        d["significant_other"] = self.significant_other.to_dict()
        return d


def by_dataset(runs: list[SeedRun]) -> dict[str, list[SeedRun]]:
    """The runs grouped by dataset, in run order."""
    out: dict[str, list[SeedRun]] = {}
    for r in runs:
        out.setdefault(r.dataset, []).append(r)
    return out
