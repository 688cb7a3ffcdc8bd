"""The per-seed work of the ``space`` experiment: SPACE (recording its old-task logits), GPM
and fine-tuning on one seed's permuted and split streams, through the continual runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from netprism.continual.baselines import FineTune
from netprism.continual.gpm import GPM
from netprism.continual.recipe import stream_config
from netprism.continual.runner import ContinualMethod, StreamResult, Trainer, run_stream
from netprism.continual.space import SPACE
from netprism.continual.streams import permuted_stream, split_stream
from netprism.core.seed import seed_everything
from netprism.experiments.space.config import SPACEExperimentConfig
from netprism.experiments.space.records import SeedRuns, StreamRuns
from netprism.models import create_model

STREAMS: dict[str, tuple[Callable[..., Any], str | None]] = {
    "permuted": (permuted_stream, None),
    "split": (split_stream, "multi"),
}


class RecordingSPACE(SPACE):
    """SPACE that records every learned task's logits on a probe set and compares them later.

    ``probes[j]`` (N_j, ...) is task ``j``'s probe input.  After each task, every earlier task's
    sub-network logits are compared bit for bit with those recorded right after it was learned.
    """

    def __init__(self, probes: list[torch.Tensor], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probes = probes
        self.reference: dict[int, torch.Tensor] = {}
        self.pairs = 0
        self.identical_pairs = 0
        self.max_abs_diff = 0.0

    def fit_task(self, model: torch.nn.Module, task: int, data: Any, train: Trainer) -> None:
        super().fit_task(model, task, data, train)
        for j in range(task + 1):
            device = next(model.parameters()).device
            with self.subnetwork(model, j), torch.no_grad():
                was_training = model.training
                out = model.eval()(self.probes[j].to(device))
                model.train(was_training)
            if j == task:
                self.reference[j] = out
                continue
            self.pairs += 1
            self.identical_pairs += int(torch.equal(out, self.reference[j]))
            diff = float((out - self.reference[j]).abs().max())
            self.max_abs_diff = max(self.max_abs_diff, diff)


def validate(config: SPACEExperimentConfig) -> None:
    """Tasks, streams and thresholds, checked before any work."""
    if config.n_tasks < 2:
        raise ValueError(f"a stream needs at least 2 tasks, got n_tasks={config.n_tasks}")
    unknown = [s for s in config.streams if s not in STREAMS]
    if unknown or not config.streams:
        raise ValueError(f"streams must be a non-empty subset of {sorted(STREAMS)}, got {unknown}")
    n_hidden = len(config.hidden)
    if len(config.var_kept) not in (1, n_hidden):
        raise ValueError(f"var_kept needs 1 or {n_hidden} values, got {config.var_kept!r}")
    if len(config.gpm_threshold) not in (1, n_hidden + 1):
        raise ValueError(
            f"gpm_threshold needs 1 or {n_hidden + 1} values, got {config.gpm_threshold!r}"
        )
    for v in (*config.var_kept, *config.gpm_threshold):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"thresholds must lie in (0, 1], got {v!r}")


def _one_value(values: tuple[float, ...]) -> float | list[float]:
    return float(values[0]) if len(values) == 1 else list(values)


def _methods(
    config: SPACEExperimentConfig, seed: int, heads: str | None, probes: list[torch.Tensor]
) -> dict[str, ContinualMethod]:
    gpm_thr = config.gpm_threshold
    if heads == "multi" and len(gpm_thr) > 1:
        gpm_thr = gpm_thr[: len(config.hidden)]  # the per-task head is not projected
    space = RecordingSPACE(
        probes,
        var_kept=_one_value(config.var_kept),
        retrain_epochs=config.retrain_epochs,
        samples=config.samples,
        rule=cast(Any, config.rule),
        seed=seed,
    )
    gpm = GPM(
        threshold=_one_value(gpm_thr),
        samples=config.samples,
        exclude=() if heads is None else ("head",),
        seed=seed,
    )
    return {"space": space, "gpm": gpm, "finetune": FineTune()}


def _one_stream(config: SPACEExperimentConfig, seed: int, kind: str) -> StreamRuns:
    make, heads = STREAMS[kind]
    train, test = make(config.dataset, config.n_tasks, seed=seed, data_dir=config.data_dir)
    shape = train[0].input_shape
    classes = (
        train[0].num_classes
        if heads is None
        else 1 + max(int(t.extras["global_y"].max()) for t in train)
    )
    recipe = stream_config(
        config.epochs, config.batch_size, config.lr, seed=seed, device=config.device
    )
    results: dict[str, StreamResult] = {}
    space: RecordingSPACE | None = None
    example = train[0].x[:1]
    for name, method in _methods(config, seed, heads, [t.x for t in test]).items():
        seed_everything(seed)
        model = create_model("mlp", input_shape=shape, num_classes=classes, hidden=config.hidden)
        results[name] = run_stream(model, train, test, method, config=recipe, heads=heads)
        if isinstance(method, RecordingSPACE):
            space = method
            full = method.task_macs(model, example)["total"]
            macs = [method.task_macs(model, example, t)["total"] / full for t in range(len(train))]
            layers = method.unit_layers(model).items()
            widths = {n: int(cast(torch.Tensor, m.weight).shape[0]) for n, m in layers}
    assert space is not None
    return StreamRuns(
        kind=kind,
        results=results,
        units=list(space.units_),
        widths=widths,
        mac_fraction=macs,
        pairs=space.pairs,
        identical_pairs=space.identical_pairs,
        max_abs_diff=space.max_abs_diff,
    )


def one_seed(config: SPACEExperimentConfig, seed: int) -> SeedRuns:
    """SPACE, GPM and fine-tuning on every configured stream of one seed."""
    return SeedRuns(seed, {kind: _one_stream(config, seed, kind) for kind in config.streams})
