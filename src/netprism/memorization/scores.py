"""One call: train once, score every sample by curvature and by every training-dynamics peer.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831): the memorization score of a sample is its input-loss
curvature averaged over training epochs.  The peers (:mod:`netprism.memorization.dynamics`)
come from the same run through the training callbacks, so comparisons are fair.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.core.curvature import CurvatureTracker
from netprism.core.seed import seed_everything
from netprism.io import atomic_write_text
from netprism.memorization import scores_io
from netprism.memorization.dynamics import (
    DYNAMICS_SCORES,
    TRAINING_LOSS_SCORES,
    CumulativeLoss,
    TrainingDynamics,
)
from netprism.memorization.names import ALL_METHODS as ALL_METHODS
from netprism.memorization.names import CURVATURE_SCORES as CURVATURE_SCORES
from netprism.memorization.names import DEFAULT_EVERY, DEFAULT_H, DEFAULT_N_PROBES
from netprism.memorization.names import DEFAULT_METHODS as DEFAULT_METHODS
from netprism.memorization.premise import MemorizationPremiseWarning, check_premise
from netprism.memorization.select import DEFAULT_LABEL_ISSUE_METHOD
from netprism.train import BatchKeys, TrainConfig, fit
from netprism.train.config import require_train_config


@dataclass
class MemorizationScores:
    """Per-sample scores of several methods from one training run.

    Attributes
    ----------
    scores : dict of str -> Tensor (N,)
        Higher = more memorized / more likely mislabeled, for every method.
    per_epoch : dict of str -> Tensor (E, N)
        Single-epoch ``curvature`` (norm) and ``loss`` values, for over-training plots.
    model : nn.Module
        The trained model.
    history : list of dict
        The training history (per-epoch metrics).
    seconds : dict
        Wall-clock seconds: ``train`` (fit, excluding scoring), ``curvature``, ``dynamics``.
    """

    scores: dict[str, torch.Tensor]
    per_epoch: dict[str, torch.Tensor] = field(default_factory=dict)
    model: nn.Module | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.scores:
            raise KeyError(f"no scores for method {name!r}; have {sorted(self.scores)}")
        return self.scores[name]

    def __len__(self) -> int:
        return len(next(iter(self.scores.values())))

    @property
    def names(self) -> list[str]:
        return list(self.scores)

    def ranked(self, name: str = "curvature") -> torch.Tensor:
        """Sample indices sorted by ``name``'s score, highest first, ``(N,)``."""
        return torch.argsort(self[name], descending=True, stable=True)

    def to_csv(
        self,
        path: str | Path,
        *,
        reasons: Mapping[int, str] | None = None,
        rank_by: str = "curvature",
    ) -> Path:
        """Write one row per sample, ranked by ``rank_by``: rank, index, every score, reason."""
        order = self.ranked(rank_by).tolist()
        header = ["rank", "index", *self.names, "reason"]
        rows = [",".join(header)]
        for rank, idx in enumerate(order, 1):
            values = [f"{float(self.scores[n][idx]):.6g}" for n in self.names]
            reason = (reasons or {}).get(idx, "")
            rows.append(",".join([str(rank), str(idx), *values, _csv_field(reason)]))
        return atomic_write_text(path, "\n".join(rows) + "\n")

    def save(self, path: str | Path) -> Path:
        """Write to one safetensors file (not the model); see :func:`.scores_io.save_scores`."""
        return scores_io.save_scores(self, path)

    @classmethod
    def load(cls, path: str | Path, *, allow_unknown: bool = False) -> MemorizationScores:
        """Read a :meth:`save` file, checked; see :func:`.scores_io.read_scores_file`."""
        return cls(**scores_io.read_scores_file(path, allow_unknown=allow_unknown))

    @classmethod
    def from_csv(cls, path: str | Path, *, allow_unknown: bool = False) -> MemorizationScores:
        """Read a :meth:`to_csv` file back by index; see :func:`.scores_io.read_scores_csv`."""
        return cls(scores_io.read_scores_csv(path, allow_unknown=allow_unknown))

    def to_pandas(self) -> Any:
        """A DataFrame, one row per sample index; see :func:`.scores_io.scores_to_pandas`."""
        return scores_io.scores_to_pandas(self)


def load_scores(path: str | Path, *, allow_unknown: bool = False) -> MemorizationScores:
    """:meth:`MemorizationScores.load`: read a saved scores file, checked."""
    return MemorizationScores.load(path, allow_unknown=allow_unknown)


def scores_from_csv(path: str | Path, *, allow_unknown: bool = False) -> MemorizationScores:
    """:meth:`MemorizationScores.from_csv`: read a ranked CSV back by index."""
    return MemorizationScores.from_csv(path, allow_unknown=allow_unknown)


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def default_config(epochs: int = 100, *, seed: int = 0, device: str = "auto") -> TrainConfig:
    """The calibrated recipe of :func:`memorization_scores`: Adam, lr 1e-3, cosine decay,
    batch 64, no weight decay, ``epochs`` epochs.

    Change anything else with :func:`dataclasses.replace` (or build a
    :class:`~netprism.train.TrainConfig` of your own).

    Examples
    --------
    >>> cfg = default_config(epochs=30, seed=1)
    >>> cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs, cfg.seed
    ('adam', 0.001, 64, 30, 1)
    """
    return TrainConfig(
        epochs=epochs,
        batch_size=64,
        lr=1e-3,
        optimizer="adam",
        scheduler="cosine",
        weight_decay=0.0,
        seed=seed,
        device=device,
    )


def memorization_scores(
    model_or_factory: nn.Module | Callable[[], nn.Module],
    dataset: Any,
    config: TrainConfig | None = None,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    n_probes: int = DEFAULT_N_PROBES,
    h: float = DEFAULT_H,
    every: int = DEFAULT_EVERY,
    backend: str = "finite_difference",
    score_data: Any = None,
    output_fn: Callable[[Any], torch.Tensor] | None = None,
    batch_keys: BatchKeys | None = None,
) -> MemorizationScores:
    """Train once and return each sample's curvature and peer scores.

    Parameters
    ----------
    model_or_factory : nn.Module or callable
        The model to train (a deep copy is trained; yours is left untouched) or a zero-argument
        factory returning a fresh one (called after seeding with ``seed``).
    dataset : DataLoader, Dataset, TensorDataset or (x, y) tensors
        Training data ``x`` (N, ...) and labels ``y`` (N,), possibly noisy, streamed every
        epoch: a ``DataLoader`` keeps its shuffling, workers and augmentation (``epochs``'
        ``config.batch_size`` then does not apply).  Scores are keyed by dataset index, never
        by the order the loader yields samples.
    config : TrainConfig, optional
        The training recipe, the one place epochs, optimizer, seed and device are set.
        Default: :func:`default_config` with 100 epochs (the calibrated recipe: Adam, lr 1e-3,
        cosine decay, batch 64); ``default_config(epochs=30, seed=1, device="cuda")`` changes
        those.  ``config.seed`` also seeds the curvature probes.
    methods : sequence of str
        Any of :data:`ALL_METHODS`; curvature scores need the curvature tracker, ``"csl"``
        only the training batches' losses, the others one eval pass per epoch.
    n_probes, h, every, backend
        Curvature settings (see :func:`netprism.core.curvature.input_curvature`).  The
        defaults (``h=1e-2``, 10 probes, every 2nd epoch; :data:`~netprism.memorization.names.
        DEFAULT_H`) were chosen by a measured sensitivity study; the paper uses ``h=1e-3`` and
        scores every epoch (``h=1e-3, every=1`` reproduce it).
    score_data : same types as ``dataset``, optional
        The same samples without random augmentation, index for index: what is scored after
        each epoch.  Default: ``dataset`` itself (pass this when its transform is random).
    output_fn : callable, optional
        Model output -> logits, for models returning something other than a tensor, a
        tuple, a dict with ``"logits"`` or an object with ``.logits``.
    batch_keys : BatchKeys, optional
        Entry names of dict items (see :class:`netprism.train.BatchKeys`).

    Returns
    -------
    MemorizationScores
        Samples the loader never drew (``drop_last=True``, a subset sampler) score NaN.

    Examples
    --------
    >>> x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    >>> s = memorization_scores(torch.nn.Linear(4, 3), (x, y), default_config(epochs=2),
    ...                         n_probes=2, methods=("curvature", "loss"))
    >>> sorted(s.names), s["curvature"].shape
    (['curvature', 'loss'], torch.Size([24]))
    """
    check_methods(methods)
    config = require_train_config(config, default_config(epochs=100), "memorization_scores", {})
    seed_everything(config.seed)
    model = (
        model_or_factory()
        if not isinstance(model_or_factory, nn.Module)
        else (copy.deepcopy(model_or_factory))
    )
    tracker, dynamics = recorders(
        methods, every=every, n_probes=n_probes, h=h, backend=backend, seed=config.seed
    )
    csl = CumulativeLoss() if set(methods) & set(TRAINING_LOSS_SCORES) else None
    callbacks = [r for r in (tracker, dynamics, csl) if r is not None]
    start = time.perf_counter()
    out = fit(
        model, dataset, config, callbacks=callbacks, score_data=score_data,
        output_fn=output_fn, batch_keys=batch_keys,
    )  # fmt: skip
    total = time.perf_counter() - start
    if not out.history:
        raise ValueError("no epochs were recorded: memorization scores need epochs >= 1")
    scores, per_epoch, seconds = _collect(tracker, dynamics)
    if csl is not None:
        scores.update(csl.scores_)
    if out.seen is not None and not bool(out.seen.all()):
        scores = {k: _missing_as_nan(v, out.seen) for k, v in scores.items()}
    seconds["train"] = total - sum(seconds.values())
    if dynamics is not None and set(methods) & set(CURVATURE_SCORES):
        _warn_unless_memorized(scores, dynamics)
    chosen = {name: scores[name] for name in methods}
    return MemorizationScores(chosen, per_epoch, model, out.history, seconds)


#: Scores that size the estimated noise of the premise check, first present wins.
PREMISE_DETECTORS = (DEFAULT_LABEL_ISSUE_METHOD, "csl", "loss", "in_confidence", "aum")


def _warn_unless_memorized(scores: dict[str, torch.Tensor], dynamics: TrainingDynamics) -> None:
    """Warn, naming the numbers, when the network did not fit most of the labels a detector
    estimates wrong (:mod:`netprism.memorization.premise`)."""
    detector = next(name for name in PREMISE_DETECTORS if name in scores)
    check = check_premise(dynamics.final_correct_, scores[detector], detector)
    if not check.holds:
        warnings.warn(check.message(), MemorizationPremiseWarning, stacklevel=3)


def check_methods(methods: Sequence[str], allowed: Sequence[str] = ALL_METHODS) -> None:
    """Raise unless ``methods`` is a non-empty subset of ``allowed`` (:data:`ALL_METHODS`)."""
    unknown = sorted(set(methods) - set(allowed))
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {tuple(allowed)}, got {unknown}")


def recorders(
    methods: Sequence[str],
    *,
    every: int,
    n_probes: int,
    h: float,
    backend: str,
    seed: int,
    batch_size: int = 256,
    dynamics_batch_size: int = 1024,
) -> tuple[CurvatureTracker | None, TrainingDynamics | None]:
    """The per-epoch recorders ``methods`` need: the curvature tracker (with its history)
    and/or the training-dynamics records; ``None`` for one that no method needs."""
    tracker = dynamics = None
    if set(methods) & set(CURVATURE_SCORES):
        tracker = CurvatureTracker(
            every=every, n_probes=n_probes, h=h, backend=backend, seed=seed,
            batch_size=batch_size, keep_history=True,
        )  # fmt: skip
    if set(methods) & set(DYNAMICS_SCORES):
        dynamics = TrainingDynamics(batch_size=dynamics_batch_size)
    return tracker, dynamics


def _missing_as_nan(score: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    marked = score.double().clone()
    marked[~seen] = float("nan")
    return marked


def _collect(
    tracker: CurvatureTracker | None, dynamics: TrainingDynamics | None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, float]]:
    scores: dict[str, torch.Tensor] = {}
    per_epoch: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    if tracker is not None:
        avg = tracker.scores_
        scores.update(
            curvature=avg.norm,
            curvature_sq=avg.sq_norm,
            curvature_final=tracker.history_[-1].double(),
        )
        per_epoch["curvature"] = tracker.history_
        seconds["curvature"] = tracker.seconds_
    if dynamics is not None:
        scores.update(dynamics.scores_)
        per_epoch["loss"] = dynamics.loss_history_
        seconds["dynamics"] = dynamics.seconds_
    return scores, per_epoch, seconds
