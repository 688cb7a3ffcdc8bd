"""``train``: fit a registered model on a registered dataset and report test accuracy.

Not a paper's claim but the floor every method stands on: the trainer, the data and the
models must reach a known accuracy.  Baselines measured in the same run: a majority-class
predictor and multinomial logistic regression (scikit-learn) on the raw inputs.

``--checkpoint-dir DIR`` writes a checkpoint after every epoch; ``--resume`` continues the
newest one there after a kill (it must come from the same model, optimizer and run fields;
see :class:`netprism.train.TrainConfig`).

One model on one ``seed`` (the config has no ``seeds``), so the run is a plain function
rather than a :class:`netprism.experiments.base.SeedStudy`; it follows the same steps:
measure -> claims -> figures.
"""

from __future__ import annotations

from pathlib import Path

from netprism.core.seed import torch_threads
from netprism.experiments.base import Result, register_experiment, seeded_result
from netprism.experiments.train.claims import claims_and_metrics
from netprism.experiments.train.config import SCALES, TrainExperimentConfig
from netprism.experiments.train.figures import draw
from netprism.experiments.train.run import measure


@register_experiment(
    "train",
    config=TrainExperimentConfig,
    scales=SCALES,
    demo=True,
    paper="netprism foundation: trainer, data and model registry",
)
def run(config: TrainExperimentConfig, *, out_dir: Path | None = None) -> Result:
    """Train ``config.model`` on ``config.dataset`` and compare with the baselines."""
    with torch_threads(config.threads):
        record = measure(config)
        claims, metrics, baselines = claims_and_metrics(record, config)
        figures = [] if out_dir is None else draw(record, config, Path(out_dir))
    return seeded_result(
        "train",
        config,
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        seed=config.seed,
    )


__all__ = ["SCALES", "TrainExperimentConfig", "run"]
