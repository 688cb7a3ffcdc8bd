"""``vrm_ood``: VRM's auxiliary-class OoD detector against MSP, max-logit, energy, ODIN and
Mahalanobis, with the cost of each.

Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection", 2020, arXiv 2012.08398. The small-scale check: digits 0-4 in
distribution, far OoD = Gaussian and uniform noise, near OoD = digits 5-9 and transformed
digits. The paper's exact recipe is not public; what is inferred is listed in
:mod:`netprism.robustness.ood`.

Per seed, three classifiers start from the same initial body weights and see the same batches
(Adam): plain ERM (K outputs), intra-class mixup ("VRM applied to the baselines", K outputs)
and VRM (K + 1 outputs).  The baselines are scored on the plain and on the mixup classifier,
VRM on its own.  No threshold, epsilon or seed is chosen by looking at OoD data: ODIN uses
T = 1000 and a fixed epsilon.

Stated caveat: VRM's auxiliary class is trained on inputs mixed with N(0, 1) noise clipped to
[0, 1]; the far-OoD Gaussian set is N(0.5, 1) clipped to [0, 1] (the ODIN-era convention), so it
lies in the vicinity VRM was trained on -- which is the paper's point, and why beating plain
MSP there is expected.  Uniform noise and the near-OoD sets were never seen in training.

Device: ``--device`` (default ``auto``: CUDA when present) trains the three classifiers (on
the engine, :func:`netprism.train.fit`) and runs every detector's scoring there; the mixup and
noise draws are made on the CPU generator whatever the device.

Method note: ``docs/methods/robustness.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.vrm_ood.claims import claims_and_metrics
from netprism.experiments.vrm_ood.config import FAR_SETS, MODELS, NEAR_SETS, SCALES, VRMOODConfig
from netprism.experiments.vrm_ood.figures import draw
from netprism.experiments.vrm_ood.run import measure, validate

STUDY = SeedStudy(
    "vrm_ood",
    measure=measure,  # the data and OoD sets once, then every seed on them
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "vrm_ood",
    config=VRMOODConfig,
    scales=SCALES,
    demo=False,
    paper="Ravikumar, Kodge, Garg & Roy, Exploring Vicinal Risk Minimization for Lightweight "
    "Out-of-Distribution Detection (2020, arXiv 2012.08398)",
)(STUDY.run)

__all__ = ["FAR_SETS", "MODELS", "NEAR_SETS", "SCALES", "STUDY", "VRMOODConfig", "run"]
