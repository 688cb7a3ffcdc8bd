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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netprism.continual.baselines import AGEM, EWC, FineTune, joint_training
from netprism.continual.gpm import GPM
from netprism.continual.recipe import stream_config
from netprism.continual.runner import ContinualMethod, StreamResult, run_stream
from netprism.continual.streams import permuted_stream
from netprism.core.seed import seed_everything, torch_threads
from netprism.experiments._gpm_report import (
    METHODS,
    SeedRuns,
    claims_and_metrics,
    plot_all,
)
from netprism.experiments.base import (
    Result,
    check_seeds,
    register_experiment,
    seeded_result,
    spread_over_ranks,
)
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.train.device import resolve_device


@dataclass(frozen=True)
class GPMExperimentConfig:
    """Config of the ``gpm`` experiment (defaults = small scale, the calibration recipe)."""

    dataset: str = "digits"
    n_tasks: int = 5
    hidden: tuple[int, ...] = (100, 100)
    epochs: int = 5
    batch_size: int = 10
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    threshold: tuple[float, ...] = (0.95, 0.99, 0.99)  # one per protected layer (or one value)
    samples: int = 300
    rule: str = "below"
    ewc_lam: float = 30.0  # lam >= 100 diverges (ACC 10) on most seeds under SGD lr 0.05
    ewc_fisher_samples: int = 200
    agem_memory: int = 100
    agem_ref_batch: int = 256
    sweep_thresholds: tuple[float, ...] = (0.90, 0.95, 0.97, 0.99, 0.999)
    min_acc_gap: float = 15.0  # points, GPM ACC - fine-tuning ACC
    min_gpm_bwt: float = -10.0  # points
    max_finetune_bwt: float = -25.0  # points
    min_spearman: float = 0.8
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models, 0 = torch default


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "n_tasks": 3,
        "epochs": 1,
        "batch_size": 32,
        "ewc_fisher_samples": 50,
        "samples": 100,
        "seeds": (0,),
        "sweep_thresholds": (0.9, 0.999),
    },
    "small": {},
    "full": {"n_tasks": 5, "seeds": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
}


@register_experiment(
    "gpm",
    config=GPMExperimentConfig,
    scales=SCALES,
    demo=False,
    paper="Saha, Garg & Roy, Gradient Projection Memory for Continual Learning "
    "(ICLR 2021, arXiv 2103.09762)",
)
def run(config: GPMExperimentConfig, *, out_dir: Path | None = None) -> Result:
    """Run every method and the threshold sweep over ``config.seeds``; state the claims."""
    _validate(config)
    with torch_threads(config.threads):  # under torchrun: seed i on rank i % world_size
        runs = spread_over_ranks(config.seeds, lambda seeds: [_one_seed(config, s) for s in seeds])
    claims, metrics, baselines = claims_and_metrics(runs, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, config, Path(out_dir))
        _save_streams(runs, Path(out_dir))
    return seeded_result(
        "gpm", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: GPMExperimentConfig) -> None:
    resolve_device(config.device)  # an unusable device fails before any work
    check_seeds(config.seeds)
    if config.n_tasks < 2:
        raise ValueError(f"a stream needs at least 2 tasks, got n_tasks={config.n_tasks}")
    n_layers = len(config.hidden) + 1
    if len(config.threshold) not in (1, n_layers):
        raise ValueError(
            f"threshold needs 1 or {n_layers} values (hidden layers + head), "
            f"got {config.threshold!r}"
        )
    for eps in (*config.threshold, *config.sweep_thresholds):
        if not 0.0 < eps <= 1.0:
            raise ValueError(f"thresholds must lie in (0, 1], got {eps!r}")
    if len(config.sweep_thresholds) < 2:
        raise ValueError("sweep_thresholds needs at least 2 values to show a trend")


def _model(config: GPMExperimentConfig, input_shape: tuple[int, ...], seed: int) -> torch.nn.Module:
    """The same initial weights for every method of one seed."""
    seed_everything(seed)
    return create_model("mlp", input_shape=input_shape, num_classes=10, hidden=tuple(config.hidden))


def _gpm(config: GPMExperimentConfig, threshold: float | list[float], seed: int) -> GPM:
    # exclude=(): the shared head is projected too (3 matrices, as in the PMNIST code)
    return GPM(
        threshold=threshold,
        rule=config.rule,  # type: ignore[arg-type]
        samples=config.samples,
        exclude=(),
        seed=seed,
    )


def _methods(config: GPMExperimentConfig, seed: int) -> dict[str, ContinualMethod]:
    thr = config.threshold
    return {
        "finetune": FineTune(),
        "ewc": EWC(lam=config.ewc_lam, fisher_samples=config.ewc_fisher_samples, seed=seed),
        "agem": AGEM(
            memory_per_task=config.agem_memory, ref_batch_size=config.agem_ref_batch, seed=seed
        ),
        "gpm": _gpm(config, float(thr[0]) if len(thr) == 1 else list(thr), seed),
    }


def _one_seed(config: GPMExperimentConfig, seed: int) -> SeedRuns:
    """Every method, joint training and the threshold sweep on the stream of one seed."""
    train, test = permuted_stream(
        config.dataset, config.n_tasks, seed=seed, data_dir=config.data_dir
    )
    shape = train[0].input_shape
    num_classes = train[0].num_classes
    if num_classes != 10:
        raise ValueError(f"the shared head has 10 outputs, {config.dataset!r} has {num_classes}")
    recipe = stream_config(config.epochs, config.batch_size, config.lr, "sgd", seed, config.device)
    streams: dict[str, StreamResult] = {}
    memory: list[dict[str, int]] = []
    fan_in: dict[str, int] = {}
    for name, method in _methods(config, seed).items():
        model = _model(config, shape, seed)
        streams[name] = run_stream(model, train, test, method, config=recipe)
        if isinstance(method, GPM):  # memory columns K per layer after each task, and D
            memory = list(method.sizes_)
            layers = method.protected_layers(model).items()
            fan_in = {n: int(m.weight[0].numel()) for n, m in layers}  # type: ignore[index]
    joint = joint_training(_model(config, shape, seed), train, test, config=recipe)
    sweep: dict[float, StreamResult] = {}
    for eps in config.sweep_thresholds:
        model = _model(config, shape, seed)
        sweep[eps] = run_stream(model, train, test, _gpm(config, eps, seed), config=recipe)
    assert set(streams) == set(METHODS)
    return SeedRuns(seed, streams, joint, sweep, memory, fan_in)


def _save_streams(runs: list[SeedRuns], out_dir: Path) -> None:
    """Every accuracy matrix (fractions) per seed, method and sweep threshold: streams.json."""
    data = {
        str(r.seed): {
            "methods": {name: s.to_dict() for name, s in r.streams.items()},
            "joint": r.joint.tolist(),
            "sweep": {str(eps): s.to_dict() for eps, s in r.sweep.items()},
            "gpm_memory": r.memory,
            "fan_in": r.fan_in,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "streams.json", json.dumps(data, indent=1))
