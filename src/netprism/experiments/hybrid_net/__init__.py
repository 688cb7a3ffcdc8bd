"""``hybrid_net``: Hybrid-Net's PCA-chosen k-bit layers against pure XNOR, with 45 nm energy.

Chakraborty, Roy, Garg, Ankit & Roy, "Constructing Energy-efficient Mixed-precision Neural
Networks through Principal Component Analysis for Edge Intelligence", Nature Machine
Intelligence 2020, arXiv 1906.01493 (XNOR-Net: Rastegari et al., ECCV 2016, arXiv 1603.05279).
Recipe and network from our calibration on digits:
conv1 (FP) -> h1..h4 (quantized) -> fc (FP), Adam lr 3e-3 with a cosine schedule, no weight
decay; MNIST-1D batch 128 for 20 epochs, digits batch 64; inputs standardised with the
training set's global mean and std.

Per dataset and seed, trained from scratch with the same seed: the FP net, pure XNOR
(h1..h4 binary), the PCA pass on the trained XNOR net (channel-wise, centered, 99 % of the
variance, conv outputs before BN on the first ``pca_samples`` training samples), Hybrid-Net
at each of ``bits`` on the layers PCA flags, and the all-hidden-k control.  A configuration
that equals an earlier one (e.g. PCA flags every hidden layer) is trained once and reused.
Energies come from :mod:`netprism.compression.hybrid` (compute + SRAM weight reads).

Then the faithful twin of ``significant_layers`` (pre-registered, target unchanged): on
MNIST-1D, a deeper XNOR net in which few hidden layers widen, as in the paper's VGG-16 and
ResNet-18 (``faithful_widths`` = conv1 and two stages of four, ``faithful_pool_after``), read
by PCA under both lenses at 99.9 % (the claim, ``pre``) and 99 % of the variance; only the
XNOR net is trained (``faithful_seeds=()`` skips the twin).

The paper's 94 % of XNOR's efficiency cannot be expected here: the full-precision first and
last layers dominate a small net's energy, so any k-bit hidden layer costs a large share of
the tiny binary budget.  Small scale trains digits for fewer epochs than the calibration (10
instead of 30) and MNIST-1D for the calibration's 20, to stay within 10 minutes on 2 cores.

Method note: ``docs/methods/compression.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.base import SeedStudy, register_experiment
from netprism.experiments.hybrid_net.claims import claims_and_metrics
from netprism.experiments.hybrid_net.config import DATASETS, SCALES, HybridNetConfig
from netprism.experiments.hybrid_net.figures import draw
from netprism.experiments.hybrid_net.run import measure, validate

STUDY = SeedStudy(
    "hybrid_net",
    measure=measure,
    claims=claims_and_metrics,
    figures=draw,
    validate=validate,
)
run = register_experiment(
    "hybrid_net",
    config=HybridNetConfig,
    scales=SCALES,
    demo=False,
    cost=9,  # rough CPU minutes at small
    paper="Chakraborty, Roy, Garg, Ankit & Roy, Constructing Energy-efficient Mixed-precision "
    "Neural Networks through PCA for Edge Intelligence (Nature Machine Intelligence 2020, "
    "arXiv 1906.01493)",
)(STUDY.run)

__all__ = ["DATASETS", "SCALES", "STUDY", "HybridNetConfig", "run"]
