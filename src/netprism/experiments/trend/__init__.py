"""``trend``: transferability across model variants and TREND's robust ensembles.

Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble Design" (IEEE TAI
2023, arXiv 2008.01524). Small-scale check: the bundled 8x8 digits, per seed a pool of small
models -- a full-precision MLP 64-64-32-10 (``fp``), the same with another initialisation
(``fp_init``), LeNet (``lenet``, architecture), Adam instead of SGD (``adam``), 1/2/4-bit input
quantisation (``q1``, ``q2``, ``q4``, BPDA identity backward), halftoning (``ht``, sigmoid
surrogate) and 2-bit weights and activations (``wq``).

Measured per seed: the TM matrix (L-inf PGD with random start, an eps sweep, the fitted curve
read at ``tm_eps``; the eps scale of 8x8 digits is not CIFAR's 8/255); ensemble PGD (D-AG,
A-GD, U-GD) on the hard-vote ensemble {fp, q1, q2} with and without one member's loss
multiplied by ``domination_scale``; the TREND-selected ensemble (lowest mean mutual TM)
against its best member and random ensembles of the same size under the strongest ensemble
attack at ``attack_eps``; and attack success against eps for FGSM, PGD, MI-FGSM (on ``fp``)
and the three ensemble attacks (on the TREND ensemble).  The faithful twins of the
domination and design claims (pre-registered, targets unchanged) run on ``faithful_seeds``
(empty at small: opt-in there).

Device: ``--device`` (default ``auto``: CUDA when present) trains every variant and runs every
attack, prediction and vote there (the attacked test samples are moved once); models are
initialised on the CPU from their seed, and the vote's tie-breaking draw stays on the CPU.

Method note: ``docs/methods/robustness.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, per_seed, register_experiment
from netprism.experiments.trend.claims import claims_and_metrics
from netprism.experiments.trend.config import (
    DOMINATION_ENSEMBLE,
    REQUIRED,
    SCALES,
    TRENDExperimentConfig,
)
from netprism.experiments.trend.figures import draw
from netprism.experiments.trend.run import one_seed, validate

STUDY = SeedStudy(
    "trend",
    measure=per_seed(one_seed),
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "trend",
    config=TRENDExperimentConfig,
    scales=SCALES,
    demo=False,
    cost=2,  # rough CPU minutes at small
    paper="Ravikumar, Kodge, Garg & Roy, TREND: Transferability based Robust ENsemble Design "
    "(IEEE TAI 2023, arXiv 2008.01524)",
)(STUDY.run)

__all__ = ["DOMINATION_ENSEMBLE", "REQUIRED", "SCALES", "STUDY", "TRENDExperimentConfig", "run"]
