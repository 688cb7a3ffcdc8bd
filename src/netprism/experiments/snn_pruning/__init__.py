"""``snn_pruning``: spatial (PCA widths) and temporal (staged T) pruning, quantization, energy.

Chowdhury, Garg & Roy, "Spatio-Temporal Pruning and Quantization for Low-latency Spiking Neural
Networks", IJCNN 2021, arXiv 2104.12528 (abstract only; the recipe is our design, see
:mod:`netprism.spiking.pruning`). In our calibration on digits the membrane *after* the reset
needed 216 of 256 dimensions and failed the target.

Per seed, on digits with direct (analog) input coding:

1. an MLP ``64-256-256-10`` without biases is trained (Adam 1e-3, cosine), converted
   (:mod:`netprism.spiking.network`) and fine-tuned at ``T0 = 32``;
2. PCA widths of every hidden layer from the time-averaged membrane before the reset (the
   claimed rule) and, for comparison, after the reset, the spike rate and the input current,
   at 99 % and 99.9 %; the narrower networks of ``retrain_rules`` are trained from scratch
   through the same pipeline;
3. the first retrained (pruned) network is taken from ``T0`` down the ``stages`` (16 -> 8 -> 4),
   each stage fine-tuned from the previous, against converting and fine-tuning directly at the
   final T for the same total number of epochs;
4. post-training weight quantization (8 .. 2 bits) of the full SNN and of its ANN;
5. the energy proxy of the full SNN at ``T0`` and of the pruned SNN at the final T, against the
   ANN (45 nm: MAC 4.6 pJ, AC 0.9 pJ).

Method note: ``docs/methods/spiking.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.snn_pruning.claims import claims_and_metrics
from netprism.experiments.snn_pruning.config import SCALES, SNNPruningConfig
from netprism.experiments.snn_pruning.figures import draw
from netprism.experiments.snn_pruning.run import measure, validate

STUDY = SeedStudy(
    "snn_pruning",
    measure=measure,
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "snn_pruning",
    config=SNNPruningConfig,
    scales=SCALES,
    demo=False,
    cost=1,  # rough CPU minutes at small
    paper="Chowdhury, Garg & Roy, Spatio-Temporal Pruning and Quantization for Low-latency "
    "Spiking Neural Networks (IJCNN 2021, arXiv 2104.12528)",
)(STUDY.run)

__all__ = ["SCALES", "STUDY", "SNNPruningConfig", "run"]
