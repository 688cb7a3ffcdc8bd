"""``pca_design``: PCA-designed narrow CNN vs L1 filter pruning at equal MACs.

Garg, Panda, Roy, "A Low Effort Approach to Structured CNN Design Using PCA", IEEE Access
2020, arXiv 1812.06224.  The paper's claim [abs]: AlexNet/VGG-style networks on CIFAR and
ImageNet with up to 3.8x fewer operations and 9x fewer parameters at < 1 % accuracy loss.

Here (small scale, CPU): a VGG-11 (batch norm, width 0.5) on the 8x8 digits.  Per seed:
train the original; channel-wise PCA of every hidden layer's post-ReLU outputs on the
training set; design at each threshold (widths = significant dimensions, depth rule per
stage); train the designed network from scratch for the same epochs.  Baseline measured in
the same run: L1-norm filter pruning (Li et al., ICLR 2017) of the trained original to the
designed net's MACs (Torch-Pruning, bisection on a uniform ratio), fine-tuned for the same
epochs at ``finetune_lr``.  The claim: mean accuracy drop of the design at the first
threshold <= ``max_drop`` points, with its parameter and MAC reductions in the text.

The run is a plain function rather than a :class:`netprism.experiments.base.SeedStudy`: its
result's config also records the first seed's designs (``"designs"``), which a study's result
does not carry.  It follows the same steps: validate -> measure -> claims -> figures.

Method note: ``docs/methods/compression.md`` in the repository.
"""

from __future__ import annotations

from pathlib import Path

from netprism.compression.l1_pruning import l1_prune_to_macs
from netprism.core.seed import torch_threads
from netprism.experiments.base import Result, register_experiment, seeded_result
from netprism.experiments.pca_design.claims import claims_and_metrics, designs
from netprism.experiments.pca_design.config import SCALES, PCADesignConfig
from netprism.experiments.pca_design.figures import draw
from netprism.experiments.pca_design.run import measure, validate


@register_experiment(
    "pca_design",
    config=PCADesignConfig,
    scales=SCALES,
    demo=False,
    paper="Garg, Panda, Roy: A Low Effort Approach to Structured CNN Design Using PCA "
    "(IEEE Access 2020, arXiv 1812.06224)",
)
def run(config: PCADesignConfig, *, out_dir: Path | None = None) -> Result:
    """Train, design by PCA, retrain from scratch, and compare with L1 pruning."""
    with torch_threads(config.threads):
        validate(config)
        runs = measure(config)
        claims, metrics, baselines = claims_and_metrics(runs, config)
        figures = [] if out_dir is None else draw(runs, config, Path(out_dir))
    return seeded_result(
        "pca_design",
        config,
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        config_extra={"designs": designs(runs, config)},
    )


__all__ = ["SCALES", "PCADesignConfig", "l1_prune_to_macs", "run"]
