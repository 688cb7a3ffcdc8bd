"""``utilized_rank``: Garg, Koguchi, Verma, Ulbricht, "Revealing the Utilized Rank of Subspaces
of Learning in Neural Networks", arXiv 2407.04797 (2024), on MNIST-1D MLPs.

The method is our reconstruction (see :mod:`netprism.compression.utilized_rank`); targets come
from a calibration run of it made before the claims were fixed.  MNIST-1D is generated
offline with 12,000 samples split 50/50, so the test set (6,000) resolves a 1-point drop.
Baselines at the same per-layer rank, measured in the same run: plain weight SVD and
whitened SVD (the optimum of the data-weighted error).

Device: ``--device`` (default ``auto``: CUDA when present) trains, fine-tunes and scores every
model there, and the layer statistics (float64 second moments, eigendecompositions) are
accumulated on it; models are initialised on the CPU from their seed.

Method note: ``docs/methods/compression.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.utilized_rank.claims import claims_and_metrics
from netprism.experiments.utilized_rank.config import PAPER, SCALES, UtilizedRankConfig
from netprism.experiments.utilized_rank.figures import draw
from netprism.experiments.utilized_rank.run import measure, mnist1d_split

STUDY = SeedStudy("utilized_rank", measure=measure, claims=claims_and_metrics, figures=draw)
run = register_experiment(
    "utilized_rank", config=UtilizedRankConfig, scales=SCALES, demo=False, paper=PAPER, cost=6
)(STUDY.run)

__all__ = ["PAPER", "SCALES", "STUDY", "UtilizedRankConfig", "mnist1d_split", "run"]
