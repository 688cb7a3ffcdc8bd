"""``gpm``: Gradient Projection Memory against the usual baselines on permuted digits.

Saha, Garg & Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021, arXiv
2103.09762.  The small-scale recipe, as calibrated: 5 permuted-digit tasks
(domain-incremental, one shared 10-way head), an MLP 64-100-100-10, plain SGD lr 0.05, batch
10, 5 epochs per task, representations from 300 samples, thresholds ``[0.95, 0.99, 0.99]``
(the output layer is projected too, as in the PMNIST code), about ACC 90 / BWT -6 for GPM
against 66 / -39 for fine-tuning.

Methods, run on the same streams, initial weights and seeds: plain fine-tuning, EWC
(Kirkpatrick et al., PNAS 2017, arXiv 1612.00796), A-GEM (Chaudhry et al., ICLR 2019, arXiv
1812.00420), GPM, and joint (multitask) training as the upper bound.  A threshold sweep (the
same threshold on every layer) shows the stability-plasticity trade-off.

Deviation, stated: GPM's PMNIST MLP has no biases, but the ``mlp`` factory has no ``bias``
option, so the model keeps its biases; GPM (``freeze_1d=True``) freezes every 1-D parameter
after task 0, so those biases are learned on the first task only.  All accuracies below are
in percentage points (``R`` is stored as fractions).

Under ``torchrun`` the seeds are shared out over the ranks (the continual runner trains each
task with the engine's ``fit`` on its own process, ``distributed=False``, so each seed's stream
runs whole on one rank) and gathered back in order: the numbers equal a single-process run.
Training and testing run on ``device`` ("auto": CUDA when present).

Method note: ``docs/methods/continual.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, per_seed, register_experiment
from netprism.experiments.gpm.claims import claims_and_metrics
from netprism.experiments.gpm.config import METHODS, SCALES, GPMExperimentConfig
from netprism.experiments.gpm.figures import draw
from netprism.experiments.gpm.run import one_seed, validate

STUDY = SeedStudy(
    "gpm",
    measure=per_seed(one_seed, over_ranks=True),  # under torchrun: seed i on rank i % world
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "gpm",
    config=GPMExperimentConfig,
    scales=SCALES,
    demo=False,
    cost=3.5,  # rough CPU minutes at small
    paper="Saha, Garg & Roy, Gradient Projection Memory for Continual Learning "
    "(ICLR 2021, arXiv 2103.09762)",
)(STUDY.run)

__all__ = ["METHODS", "SCALES", "STUDY", "GPMExperimentConfig", "run"]
