"""``dct_snn``: DCT temporal coding against rate coding, ANN-to-SNN hybrid training, latency knob.

Garg, Chowdhury & Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021, arXiv 2010.01795.  Our calibration on
digits found rate coding ahead of DCT on near-binary 8x8 digits at every T.

Per dataset and seed: an MLP ``D-256-256-10`` without biases (as the calibration) is trained on
pixels (Adam 1e-3, cosine); for each T and each encoder (DCT: 4x4 blocks, 16 zig-zag bases,
``T / 16`` cycles, percentile thresholds per batch; rate: Bernoulli) it is copied into an SNN
(LIF, leak 0.99, soft reset), thresholds are balanced (99.9th percentile, 512 training images),
the output layer is rescaled to the ANN's logit scale (our addition, see
:func:`netprism.spiking.network.match_output_scale`; without it fine-tuning starts from a flat
softmax and first loses accuracy) and the SNN is fine-tuned with BPTT (Adam 1e-3, weight decay
5e-4, batch 32; the calibration found lr 1e-4 barely trains).

Datasets: ``digits_tone`` (the continuous-tone case the paper's claim is about, where the claim
is tested), ``digits`` (near-binary: reported beside it) and ``textures`` (continuous-tone
gratings, at one T; so easy that the ANN scores ~100 %).

Method note: ``docs/methods/spiking.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.dct_snn.claims import claims_and_metrics
from netprism.experiments.dct_snn.config import SCALES, DCTSNNConfig
from netprism.experiments.dct_snn.figures import draw
from netprism.experiments.dct_snn.run import encoder, finetune, measure, validate

STUDY = SeedStudy(
    "dct_snn",
    measure=measure,
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "dct_snn",
    config=DCTSNNConfig,
    scales=SCALES,
    demo=False,
    cost=6.5,  # rough CPU minutes at small
    paper="Garg, Chowdhury & Roy, DCT-SNN: Using DCT to Distribute Spatial Information over "
    "Time for Learning Low-Latency Spiking Neural Networks (ICCV 2021, arXiv 2010.01795)",
)(STUDY.run)

__all__ = ["SCALES", "STUDY", "DCTSNNConfig", "encoder", "finetune", "run"]
