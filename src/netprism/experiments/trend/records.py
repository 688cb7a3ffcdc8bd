"""What one seed of the ``trend`` experiment measures."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Candidate:
    """A hard-vote ensemble: its members, clean accuracy, robust accuracy per ensemble attack."""

    members: list[str]
    clean: float
    robust: dict[str, float]  # mode -> accuracy under that attack at attack_eps

    @property
    def worst(self) -> float:
        """Robust accuracy under the strongest of the ensemble attacks."""
        return min(self.robust.values())


@dataclass
class SeedRun:
    """Everything one seed measured: the pool's TM matrix, attacks and candidate ensembles."""

    seed: int
    names: list[str]
    clean: dict[str, float]
    tm: list[list[float]]  # (M, M) intended TM at tm_eps
    tm_official: list[list[float]]  # the released script's formula
    fraction: list[list[list[float]]]  # (M, M, E) N_transfer / N_common
    success: list[list[float]]  # (M, E) white-box PGD success
    single_robust: dict[str, float]  # white-box PGD accuracy at attack_eps
    candidates: dict[str, Candidate]
    domination: dict[str, Any]  # on {fp, q1, q2}
    domination_faithful: dict[str, Any]  # on the TREND-selected ensemble; {}: no twin
    sign_agreement: list[list[float]]  # (M, M) share of input-gradient signs two members share
    design_faithful: dict[str, Any]  # TREND at attack_eps, every ensemble attacked; {}: no twin
    curves: dict[str, list[float]]

    def pair(self, source: str, target: str) -> float:
        """TM from ``source`` to ``target`` at ``tm_eps``."""
        return float(self.tm[self.names.index(source)][self.names.index(target)])

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready data (``trend_runs.json``)."""
        return asdict(self)
