"""What the ``memorization`` experiment measures: every training run and the Feldman-Zhang
estimate, with the worker count its core-seconds are counted over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netprism.memorization.feldman_zhang import FZResult


@dataclass
class FZEstimate:
    """The Feldman-Zhang subsampling estimate and how many workers shared its models.

    ``n_jobs`` counts every worker process of every torchrun rank, so ``result.seconds *
    n_jobs`` is the estimate's cost in core-seconds.
    """

    result: FZResult
    n_jobs: int

    @property
    def core_seconds(self) -> float:
        """Wall-clock seconds times workers."""
        return self.result.seconds * self.n_jobs


@dataclass
class MemorizationRuns:
    """The runs (one dict per setting, in setting order: ``setting``, ``auroc``,
    ``combo_auroc``, ``per_epoch_auroc``, ``seconds``, and ``scores``/``positives`` where kept)
    and the Feldman-Zhang estimate (None when ``fz_models`` is 0)."""

    runs: list[dict[str, Any]]
    fz: FZEstimate | None
