"""``space``: SPACE's zero forgetting and per-task cost, next to GPM on the same streams.

Saha, Garg, Ankit & Roy, "SPACE: Structured Compression and Sharing of Representational Space
for Continual Learning", IEEE Access 2021, arXiv 2001.08650. The small-scale protocol: 5
permuted-digit tasks and 5 split-digit tasks (2 classes each, one head per task), an MLP
64-100-100-10 whose hidden units play the filters, channel-wise PCA at ``var_kept`` 0.95 (first
layer) / 0.99, the GPM recipe's SGD (lr 0.05, batch 10, 5 epochs per task, the same number of
retraining epochs).

Measured, per seed (the same initial weights and streams for every method): SPACE, GPM
(thresholds 0.95 / 0.99 / 0.99; on the split stream the per-task head is not projected) and
plain fine-tuning.  SPACE's old-task logits on the whole test set of every earlier task are
recorded right after that task and compared bit for bit after every later task.

Stated difference: SPACE needs the task identity at inference (its sub-network and stored
head); on the permuted stream GPM answers with one shared head and no task identity, so there
the comparison favours SPACE.  On the split stream both use the task identity.

Every task is trained by the engine's ``fit`` (through the continual runner) on ``device``
("auto": CUDA when present); the probes are scored where the model is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from netprism.continual.baselines import FineTune
from netprism.continual.gpm import GPM
from netprism.continual.recipe import stream_config
from netprism.continual.runner import ContinualMethod, StreamResult, Trainer, run_stream
from netprism.continual.space import SPACE
from netprism.continual.streams import permuted_stream, split_stream
from netprism.core.seed import seed_everything, torch_threads
from netprism.experiments._space_report import (
    SeedRuns,
    StreamRuns,
    claims_and_metrics,
    plot_all,
)
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.train.device import resolve_device

STREAMS: dict[str, tuple[Callable[..., Any], str | None]] = {
    "permuted": (permuted_stream, None),
    "split": (split_stream, "multi"),
}


@dataclass(frozen=True)
class SPACEExperimentConfig:
    """Config of the ``space`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    n_tasks: int = 5
    hidden: tuple[int, ...] = (100, 100)
    epochs: int = 5
    retrain_epochs: int = 5
    batch_size: int = 10
    lr: float = 0.05
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    var_kept: tuple[float, ...] = (0.95, 0.99)  # one per hidden layer (or one value)
    rule: str = "below"
    samples: int = 300
    gpm_threshold: tuple[float, ...] = (0.95, 0.99, 0.99)  # hidden layers + shared head
    streams: tuple[str, ...] = ("permuted", "split")
    max_gap_to_gpm: float = 5.0  # points; "ACC within a few points of GPM" (spec 6.2)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 1, "retrain_epochs": 1, "batch_size": 32, "samples": 100, "seeds": (0,)},
    "small": {},
    "full": {"seeds": tuple(range(10))},
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


@register_experiment(
    "space",
    config=SPACEExperimentConfig,
    scales=SCALES,
    demo=False,
    paper="Saha, Garg, Ankit & Roy, SPACE: Structured Compression and Sharing of "
    "Representational Space for Continual Learning (IEEE Access 2021, arXiv 2001.08650)",
)
def run(config: SPACEExperimentConfig, *, out_dir: Path | None = None) -> Result:
    """SPACE, GPM and fine-tuning on every stream and seed; claims and figures."""
    _validate(config)
    with torch_threads(config.threads):
        runs = [_one_seed(config, seed) for seed in config.seeds]
    claims, metrics, baselines = claims_and_metrics(runs, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, Path(out_dir))
        _save_streams(runs, Path(out_dir))
    return seeded_result(
        "space", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: SPACEExperimentConfig) -> None:
    resolve_device(config.device)  # an unusable device fails before any work
    check_seeds(config.seeds)
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


def _one_seed(config: SPACEExperimentConfig, seed: int) -> SeedRuns:
    return SeedRuns(seed, {kind: _one_stream(config, seed, kind) for kind in config.streams})


def _save_streams(runs: list[SeedRuns], out_dir: Path) -> None:
    """Every accuracy matrix, SPACE's units and MAC fractions per seed and stream."""
    data = {
        str(r.seed): {
            kind: {
                "methods": {name: res.to_dict() for name, res in s.results.items()},
                "space_units": s.units,
                "space_mac_fraction": s.mac_fraction,
                "widths": s.widths,
            }
            for kind, s in r.streams.items()
        }
        for r in runs
    }
    atomic_write_text(out_dir / "streams.json", json.dumps(data, indent=1))
