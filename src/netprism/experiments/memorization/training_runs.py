"""Worker side of the ``memorization`` experiment: one training run per setting.

A setting is (dataset, planted corruption, seed, recipe).  Each run plants its ground truth,
trains once with the curvature tracker and the dynamics peers attached, adds cleanlab's
confident learning when asked, and returns AUROCs (plus the raw scores of the runs drawn in the
figures).  Settings are independent, so they run in worker processes (one torch thread each).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from netprism.core.metrics import auroc, rankdata
from netprism.core.per_sample import predictions
from netprism.data import load_dataset, with_conflicting_duplicates, with_label_noise
from netprism.data.base import TensorDataset
from netprism.experiments.base import in_workers
from netprism.memorization import (
    default_config,
    duplicate_scores,
    find_label_issues,
    memorization_scores,
)
from netprism.models import create_model

CORRUPTIONS = ("none", "noise", "dup_exact", "dup_noise", "dup_shift")
#: The score of the duplicate runs that searches inputs (up to a one-pixel shift) for a
#: differently-labelled neighbour (``memorization.duplicate_scores(shifts=1)``).
DUPLICATE_SEARCH = "duplicate_search"


@dataclass(frozen=True)
class Setting:
    """One training run of the study."""

    dataset: str
    corruption: str  # one of CORRUPTIONS
    amount: float  # noise rate, or number of conflicting duplicates
    seed: int
    model: str
    hidden: tuple[int, ...]
    epochs: int
    every: int
    lr: float
    weight_decay: float = 0.0
    n_probes: int = 10
    h: float = 1e-3
    cleanlab_epochs: int = 0  # 0: skip confident learning
    keep_scores: bool = False
    data_dir: str | None = None
    device: str = "auto"
    # "experiment": the curvature settings above; "library_default": a clean run at the
    # library's defaults (h, probes, every), timed for fz_cost
    recipe: str = "experiment"


def prepared_dataset(name: str, data_dir: str | None, seed: int) -> TensorDataset:
    """Training split; MNIST-1D standardised with one global mean and std (as calibrated)."""
    ds = load_dataset(name, split="train", data_dir=data_dir, seed=seed)
    if name == "mnist1d":
        ds = ds.with_tensors(x=(ds.x - ds.x.mean()) / ds.x.std())
    return ds


def corrupted(ds: TensorDataset, s: Setting) -> tuple[TensorDataset, torch.Tensor]:
    """The training set with the planted corruption and its positives mask ``(N,)``."""
    if s.corruption == "none":
        return ds, torch.zeros(len(ds), dtype=torch.bool)
    if s.corruption == "noise":
        return with_label_noise(ds, s.amount, seed=s.seed)
    if s.corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {s.corruption!r}")
    kind = s.corruption.removeprefix("dup_")  # exact, noise (std 0.05) or shift (one pixel)
    out, dup = with_conflicting_duplicates(ds, int(s.amount), seed=s.seed, kind=kind)
    positives = torch.zeros(len(out), dtype=torch.bool)
    positives[dup.flatten()] = True
    return out, positives


def model_factory(s: Setting, ds: TensorDataset) -> Callable[[], torch.nn.Module]:
    kwargs: dict[str, Any] = {"hidden": s.hidden} if s.model == "mlp" else {}
    return partial(
        create_model, s.model, input_shape=ds.input_shape, num_classes=ds.num_classes, **kwargs
    )


def run_setting(s: Setting) -> dict[str, Any]:
    """Train once on the corrupted set; AUROC of every score against the planted positives."""
    ds, positives = corrupted(prepared_dataset(s.dataset, s.data_dir, s.seed), s)
    config = dataclasses.replace(
        default_config(s.epochs, seed=s.seed, device=s.device),
        lr=s.lr,
        weight_decay=s.weight_decay,
        progress=False,
    )
    factory = model_factory(s, ds)
    result = memorization_scores(
        factory, ds, config=config, n_probes=s.n_probes, h=s.h, every=s.every
    )
    scores = dict(result.scores)
    seconds = dict(result.seconds)
    if s.corruption.startswith("dup_"):  # the direct search for conflicting near-duplicates
        scores[DUPLICATE_SEARCH] = duplicate_scores(ds, shifts=1)
    cleanlab_set = None
    if s.cleanlab_epochs:
        start = time.perf_counter()
        scores["confident_learning"], cleanlab_set = _confident_learning(factory, ds, config, s)
        seconds["confident_learning"] = time.perf_counter() - start
    combos = combinations(scores, result.per_epoch["loss"])
    out: dict[str, Any] = {
        "setting": s,
        "seconds": seconds,
        "train_accuracy": result.history[-1]["accuracy"],
    }
    if bool(positives.any()):
        out["auroc"] = {name: auroc(positives, v) for name, v in scores.items()}
        out["combo_auroc"] = {name: auroc(positives, v) for name, v in combos.items()}
        out["per_epoch_auroc"] = {
            name: [auroc(positives, row) for row in hist] for name, hist in result.per_epoch.items()
        }
        out["estimated_set"] = {
            name: set_quality(find_label_issues(scores, method=name, return_mask=True), positives)
            for name in ESTIMATED_SET_METHODS
            if name in scores
        }
        if cleanlab_set is not None:  # the peer's own estimate: cleanlab's pruning rule
            out["estimated_set"]["cleanlab find_label_issues"] = set_quality(
                cleanlab_set, positives
            )
    if s.keep_scores:
        assert result.model is not None
        pred = predictions(result.model, ds.x, batch_size=1024)
        out.update(
            scores=scores,
            positives=positives,
            x=ds.x,
            y=ds.y,
            pred=pred,
            clean_y=ds.extras.get("clean_y", ds.y),
        )
    return out


#: Scores whose estimated label-issue set (``find_label_issues`` with no size) is measured.
ESTIMATED_SET_METHODS = ("loss", "curvature")


def set_quality(found: torch.Tensor, positives: torch.Tensor) -> dict[str, float]:
    """Size, precision and recall of a selected set ``found`` (N,) bool against the planted
    ``positives`` (N,) bool."""
    hits = int((found & positives).sum())
    return {
        "size": int(found.sum()),
        "planted": int(positives.sum()),
        "precision": hits / max(1, int(found.sum())),
        "recall": hits / max(1, int(positives.sum())),
    }


def combinations(
    scores: dict[str, torch.Tensor], loss_history: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Candidate combined detectors (for the ``combined_beats_all`` moonshot).

    ``loss_early`` is the loss averaged over the first quarter of training, before the network
    memorizes the noise; curvature only separates noisy samples late in training, so the
    two-phase rank average pairs the early-phase and the late-phase signal.
    """
    quarter = max(1, len(loss_history) // 4)
    early = loss_history[:quarter].double().mean(0)

    def rank_mean(*vectors: torch.Tensor) -> torch.Tensor:
        return torch.stack([rankdata(v) for v in vectors]).mean(0)

    return {
        "rank_mean(curvature,loss)": rank_mean(scores["curvature"], scores["loss"]),
        "rank_mean(loss,aum)": rank_mean(scores["loss"], scores["aum"]),
        "rank_mean(curvature,loss,aum)": rank_mean(
            scores["curvature"], scores["loss"], scores["aum"]
        ),
        "loss_early": early,
        "rank_mean(loss_early,curvature)": rank_mean(early, scores["curvature"]),
    }


def _confident_learning(
    factory: Callable[[], torch.nn.Module], ds: TensorDataset, config: Any, s: Setting
) -> tuple[torch.Tensor, torch.Tensor]:
    """cleanlab's score (N,) and its own estimated set of issues (N,) bool."""
    from netprism.memorization.confident import (
        confident_learning_issues,
        confident_learning_scores,
        out_of_sample_probabilities,
    )

    cfg = dataclasses.replace(config, epochs=s.cleanlab_epochs)
    probs = out_of_sample_probabilities(factory, ds, folds=5, config=cfg, seed=s.seed)
    issues = confident_learning_issues(ds.y, probs, return_mask=True)
    return confident_learning_scores(ds.y, probs).double(), issues


def run_settings(
    settings: Sequence[Setting], n_jobs: int, progress: bool = True
) -> list[dict[str, Any]]:
    """Run every setting, in ``n_jobs`` worker processes when > 1; results in input order."""
    return in_workers(run_setting, settings, n_jobs, "memorization runs", progress=progress)
