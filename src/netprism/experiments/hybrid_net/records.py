"""What one dataset and seed of the ``hybrid_net`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    in_channels: list[int] = field(default_factory=list)  # per conv layer
    widths: list[int] = field(default_factory=list)  # output channels per conv layer
    fan_in: list[int] = field(default_factory=list)  # inputs per output value: C_in x taps
    # a run of the faithful variant (the deep net, XNOR only); ``lenses`` holds its PCA readings
    # under both lenses at the thresholds other than the claim's
    faithful: bool = False
    lenses: list[SignificantLayers] = field(default_factory=list)

    def lens(self, where: str, threshold: float) -> SignificantLayers:
        """The PCA reading under lens ``where`` at ``threshold`` (``significant`` and
        ``significant_other`` included)."""
        for sig in (self.significant, self.significant_other, *self.lenses):
            if sig.where == where and sig.threshold == threshold:
                return sig
        raise KeyError(f"no PCA reading with where={where!r}, threshold={threshold!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (precisions as lists, PCA reports as dicts)."""
        d = dict(self.__dict__)
        d["precisions"] = {k: list(v) for k, v in self.precisions.items()}
        d["significant"] = self.significant.to_dict()
        d["significant_other"] = self.significant_other.to_dict()
        d["lenses"] = [sig.to_dict() for sig in self.lenses]
        return d


def by_dataset(runs: list[SeedRun]) -> dict[str, list[SeedRun]]:
    """The reproduced runs grouped by dataset, in run order (faithful runs left out)."""
    out: dict[str, list[SeedRun]] = {}
    for r in runs:
        if r.faithful:
            continue
        out.setdefault(r.dataset, []).append(r)
    return out
