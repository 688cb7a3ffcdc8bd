"""``dub_crossbar``: D.U.B. pruning for cheap crossbar ADCs against magnitude pruning.

Ibrayev, Garg, Chakraborty & Roy, "Pruning for Improved ADC Efficiency in Crossbar-based Analog
In-memory Accelerators", arXiv 2403.13082 (2024). The recipe was calibrated on digits at small
scale before the claims were fixed.

Per seed, a digits CNN (conv 1->32, 32->64, pool, 64->64, 64->128, pool, 128->128, FC->10;
3x3, pad 1, no bias, BN) is trained dense (Adam 3e-3, cosine).  Every conv and the FC layer
are mapped onto ``T x T`` crossbars.  From the same dense weights, at each target sparsity:

- D.U.B.: ``dub_epochs`` of CE + lam * Hoyer variance (one-sided gate, Adam 1e-3), snap to
  levels at the target sparsity, ``finetune_epochs`` of masked fine-tuning;
- snap only (ablation): the same snap on the dense weights, ``baseline_finetune_epochs``;
- global and layer-wise magnitude pruning, ``baseline_finetune_epochs`` each.

Every arm thus gets the same post-dense budget.  ADC energy uses conversion counts from each
layer's output size, under ``exp2`` (``2^b``) and ``linear`` (``a b + c``) models.  The VGG11
tile counts come from the conv shapes alone.

Method note: ``docs/methods/compression.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, per_seed, register_experiment
from netprism.experiments.dub_crossbar.claims import claims_and_metrics
from netprism.experiments.dub_crossbar.config import (
    MODELS,
    POOL_AFTER,
    SCALES,
    WIDTHS,
    DUBCrossbarConfig,
)
from netprism.experiments.dub_crossbar.figures import draw
from netprism.experiments.dub_crossbar.run import digits_cnn, one_seed, validate

STUDY = SeedStudy(
    "dub_crossbar",
    measure=per_seed(one_seed),
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "dub_crossbar",
    config=DUBCrossbarConfig,
    scales=SCALES,
    demo=False,
    cost=7,  # rough CPU minutes at small
    paper="Ibrayev, Garg, Chakraborty & Roy, Pruning for Improved ADC Efficiency in "
    "Crossbar-based Analog In-memory Accelerators (arXiv 2403.13082, 2024)",
)(STUDY.run)

__all__ = [
    "MODELS",
    "POOL_AFTER",
    "SCALES",
    "STUDY",
    "WIDTHS",
    "DUBCrossbarConfig",
    "digits_cnn",
    "run",
]
