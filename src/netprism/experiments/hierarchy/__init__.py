"""``hierarchy``: conditional hierarchical training against subpopulation shift.

Mukherjee, Garg & Roy, "Encoding Hierarchical Information in Neural Networks helps in
Subpopulation Shift", IEEE TAI 2023, arXiv 2112.10844.  The small-scale check: a planted
tree-structured Gaussian mixture (4 superclasses x 2 mid nodes x 2 classes = 16 classes, 4
subpopulations per class, offsets shrinking with depth; ``data/hierarchical.py``), a
BREEDS-style split (2 seen / 2 unseen subpopulations per class), a 3-head MLP trained with the
official sequential masked recipe against a flat MLP of the same trunk, plus the combined-loss
variant and a Branch-CNN-style baseline.  Digits have no natural hierarchy, so they are not
used.

Per seed the data (means and samples), the split and the initial trunk weights change; every
method of one seed sees the same data, split, trunk initialisation and batch order.  Only the
finest head predicts at test time.  Full scale is the same benchmark, larger and over 10 seeds:
the paper's BREEDS / ImageNet sets are not embedded, and CIFAR-100 (``cifar100_hierarchy``)
has no level above its 20 superclasses, so it cannot exercise a 3-level tree unaided.

The faithful twin ``hier_shift_accuracy_faithful`` (pre-registered, target unchanged) first
calibrates a subpopulation offset on the flat model alone (seeds that are not claim seeds)
until the shift is as strong and as deep as LIVING-17's (unseen / seen accuracy <= 0.62, >= 4
edges per unseen mistake), then trains flat and sequential models with the paper's recipe
(lr 0.1, batch 128, best epoch on held-out seen samples) at every offset of its grid, on
``faithful_seeds`` (empty at small: opt-in there).

Device: ``--device`` (default ``auto``: CUDA when present) trains every method (on the engine,
:func:`netprism.train.fit`) and runs the test predictions there.

Method note: ``docs/methods/robustness.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.hierarchy.claims import claims_and_metrics
from netprism.experiments.hierarchy.config import (
    HIER_METHODS,
    SCALES,
    HierarchyExperimentConfig,
)
from netprism.experiments.hierarchy.figures import draw
from netprism.experiments.hierarchy.run import measure, validate

STUDY = SeedStudy(
    "hierarchy",
    measure=measure,
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "hierarchy",
    config=HierarchyExperimentConfig,
    scales=SCALES,
    demo=False,
    cost=1.5,  # rough CPU minutes at small
    paper="Mukherjee, Garg & Roy, Encoding Hierarchical Information in Neural Networks helps "
    "in Subpopulation Shift (IEEE TAI 2023, arXiv 2112.10844)",
)(STUDY.run)

__all__ = ["HIER_METHODS", "SCALES", "STUDY", "HierarchyExperimentConfig", "run"]
