"""``memorization_grid``: every label-issue detector on every noise type, dataset and
architecture, against the frozen default.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831), and its successor Ravikumar et al., "Towards
Memorization Estimation: Fast, Formal and Free", ICML 2025 (cumulative sample loss, CSL).
Symmetric, pair-flip and instance-dependent noise at 5 % and 20 %, on digits, MNIST-1D and
digits_tone, with a ReLU MLP, a GELU MLP and LeNet (image datasets only), 3 seeds.  Detectors:
averaged curvature, CSL, the epoch-averaged loss, second-split forgetting, learning time, AUM,
forgetting events, cartography confidence, confident learning (cleanlab) and entropy.  The
default detector of ``find_label_issues`` and the premise warning were fixed before this grid
was first run; it evaluates them.

Method note: ``docs/methods/memorization.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.memorization_grid.claims import claims_and_metrics
from netprism.experiments.memorization_grid.config import SCALES, GridConfig
from netprism.experiments.memorization_grid.figures import draw
from netprism.experiments.memorization_grid.run import measure, validate

STUDY = SeedStudy(
    "memorization_grid", measure=measure, claims=claims_and_metrics, figures=draw,
    validate=validate,
)  # fmt: skip
run = register_experiment(
    "memorization_grid",
    config=GridConfig,
    scales=SCALES,
    demo=False,
    cost=40,  # rough CPU minutes at small
    paper="Garg, Ravikumar & Roy, Memorization Through the Lens of Curvature of Loss Function "
    "Around Samples (ICML 2024, arXiv 2307.05831); Ravikumar et al., Towards Memorization "
    "Estimation: Fast, Formal and Free (ICML 2025)",
)(STUDY.run)

__all__ = ["SCALES", "STUDY", "GridConfig", "run"]
