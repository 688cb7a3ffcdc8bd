"""``utilized_rank``: Garg, Koguchi, Verma, Ulbricht, "Revealing the Utilized Rank of Subspaces
of Learning in Neural Networks", arXiv 2407.04797 (2024), on MNIST-1D MLPs.

The method is our reconstruction (see :mod:`netprism.compression.utilized_rank`); targets come
from a calibration run of it made before the claims were fixed.  MNIST-1D is generated
offline with 12,000 samples split 50/50, so the test set (6,000) resolves a 1-point drop.
Baselines at the same per-layer rank, measured in the same run: plain weight SVD and
whitened SVD (the optimum of the data-weighted error).

Device: ``--device`` (default ``auto``: CUDA when present) trains, fine-tunes and scores every
model there, and the layer statistics (float64 second moments, eigendecompositions) are
accumulated on it; models are initialised on the CPU from their seed.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netprism.core.seed import torch_threads
from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.experiments._utilized_rank_report import _claims, _figures, _metrics
from netprism.experiments._utilized_rank_study import (
    _compress_seed,
    _finetune,
    _train,
    _vit_study,
    _width_study,
)
from netprism.experiments.base import Result, register_experiment
from netprism.train import evaluate, resolve_device

PAPER = "Garg et al., Revealing the Utilized Rank of Subspaces of Learning, arXiv 2407.04797"


@dataclass(frozen=True)
class UtilizedRankConfig:
    """Config of the ``utilized_rank`` experiment (defaults = small scale)."""

    widths: tuple[int, ...] = (64, 256, 1024)  # MLP 40-w-w-10; the last one is compressed
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds of the compressed (widest) model
    num_samples: int = 12000  # MNIST-1D samples generated, half train / half test
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    threshold: float = 0.99  # energy threshold of the utilization and comparison claims
    thresholds: tuple[float, ...] = (0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
    finetune_epochs: int = 5
    finetune_lr: float = 3e-4
    max_drop: float = 0.01  # params_at_drop: accuracy drop allowed after fine-tuning
    target_fraction: float = 0.25  # the paper: ViT-L/16 to 25 % of its parameters
    preserve_tol: float = 1e-6  # rank_preserves_function: max |d logit| / max |logit|
    vit_dims: tuple[int, ...] = (32, 128)  # small-ViT analogue on digits; () skips it
    vit_epochs: int = 30
    threads: int = 1
    device: str = "auto"  # training, statistics and scoring; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "widths": (16, 32, 64),
        "seeds": (0,),
        "num_samples": 1000,
        "epochs": 2,
        "thresholds": (0.9, 0.99),
        "finetune_epochs": 1,
        "vit_dims": (16, 32),
        "vit_epochs": 1,
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "threads": 0},
}


def mnist1d_split(num_samples: int) -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D with ``num_samples`` samples split 50/50 (generated offline, cached)."""
    kwargs: dict[str, Any] = {"num_samples": num_samples, "train_split": 0.5}
    return load_dataset("mnist1d", **kwargs), load_dataset("mnist1d", split="test", **kwargs)


@register_experiment(
    "utilized_rank", config=UtilizedRankConfig, scales=SCALES, demo=False, paper=PAPER
)
def run(config: UtilizedRankConfig, *, out_dir: Path | None = None) -> Result:
    """Utilized rank vs width, function preservation, and compression vs two SVD baselines."""
    resolve_device(config.device)  # an unavailable device fails before any work
    with torch_threads(config.threads):
        return _run(config, out_dir)


def _run(config: UtilizedRankConfig, out_dir: Path | None) -> Result:
    dev = config.device
    train, test = mnist1d_split(config.num_samples)
    wide = config.widths[-1]
    seeds = list(config.seeds)
    models = {w: _train(w, seeds[0], train, config) for w in config.widths[:-1]}
    wide_models = {s: _train(wide, s, train, config) for s in seeds}
    models[wide] = wide_models[seeds[0]]
    study = _width_study(models, train, test, config.threshold, dev)
    rows: list[dict[str, Any]] = []
    refs: dict[int, dict[str, float]] = {}
    for seed, model in wide_models.items():
        tuned = copy.deepcopy(model)
        _finetune(tuned, train, seed, config)
        refs[seed] = {
            "original": evaluate(model, test, device=dev)["accuracy"],
            "original_ft": evaluate(tuned, test, device=dev)["accuracy"],
        }
        rows += _compress_seed(model, train, test, seed, config)
    metrics, baselines = _metrics(study, rows, refs, config)
    metrics.update(_vit_study(config))
    claims = _claims(study, rows, refs, metrics, config)
    figures = [] if out_dir is None else _figures(study, rows, refs, out_dir)
    return Result(
        name="utilized_rank",
        config=dataclasses.asdict(config),
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        seed=seeds[0],
    )
