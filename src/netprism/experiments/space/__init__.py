"""``space``: SPACE's zero forgetting and per-task cost, next to GPM on the same streams.

Saha, Garg, Ankit & Roy, "SPACE: Structured Compression and Sharing of Representational Space
for Continual Learning", IEEE Access 2021, arXiv 2001.08650. The small-scale protocol: 5
permuted-digit tasks and 5 split-digit tasks (2 classes each, one head per task), an MLP
64-100-100-10 whose hidden units play the filters, channel-wise PCA at ``var_kept`` 0.95 (first
layer) / 0.99, the GPM recipe's SGD (lr 0.05, batch 10, 5 epochs per task, the same number of
retraining epochs).

Measured, per seed (the same initial weights and streams for every method): SPACE, GPM
(thresholds 0.95 / 0.99 / 0.99; on the split stream the per-task head is not projected) and
plain fine-tuning.  SPACE's old-task logits on the whole test set of every earlier task are
recorded right after that task and compared bit for bit after every later task.

Stated difference: SPACE needs the task identity at inference (its sub-network and stored
head); on the permuted stream GPM answers with one shared head and no task identity, so there
the comparison favours SPACE.  On the split stream both use the task identity.

Every task is trained by the engine's ``fit`` (through the continual runner) on ``device``
("auto": CUDA when present); the probes are scored where the model is.

Method note: ``docs/methods/continual.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, per_seed, register_experiment
from netprism.experiments.space.claims import claims_and_metrics
from netprism.experiments.space.config import METHODS, SCALES, SPACEExperimentConfig
from netprism.experiments.space.figures import draw
from netprism.experiments.space.run import STREAMS, RecordingSPACE, one_seed, validate

STUDY = SeedStudy(
    "space",
    measure=per_seed(one_seed),
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "space",
    config=SPACEExperimentConfig,
    scales=SCALES,
    demo=False,
    paper="Saha, Garg, Ankit & Roy, SPACE: Structured Compression and Sharing of "
    "Representational Space for Continual Learning (IEEE Access 2021, arXiv 2001.08650)",
)(STUDY.run)

__all__ = [
    "METHODS",
    "SCALES",
    "STREAMS",
    "STUDY",
    "RecordingSPACE",
    "SPACEExperimentConfig",
    "run",
]
