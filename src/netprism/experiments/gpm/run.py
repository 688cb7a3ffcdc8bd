"""The per-seed work of the ``gpm`` experiment: every method, joint training and the
threshold sweep on one seed's permuted stream, through the continual runner."""

from __future__ import annotations

import torch

from netprism.continual.baselines import AGEM, EWC, FineTune, joint_training
from netprism.continual.gpm import GPM
from netprism.continual.recipe import stream_config
from netprism.continual.runner import ContinualMethod, StreamResult, run_stream
from netprism.continual.streams import permuted_stream
from netprism.core.seed import seed_everything
from netprism.experiments.gpm.config import METHODS, GPMExperimentConfig
from netprism.experiments.gpm.records import SeedRuns
from netprism.models import create_model


def validate(config: GPMExperimentConfig) -> None:
    """Tasks, thresholds and the sweep, checked before any work."""
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


def one_seed(config: GPMExperimentConfig, seed: int) -> SeedRuns:
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
