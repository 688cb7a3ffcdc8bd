"""A dataset audit in one call: train once, then rank every sample as a label issue, a
conflicting near-duplicate or a memorized long-tail sample, and write the page to read it.

Built on Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function
Around Samples" (ICML 2024, arXiv 2307.05831) and the peers measured beside it (AUM, CSL, ...):
:func:`~netprism.memorization.memorization_scores` trains through the engine (your data,
streamed; a progress bar with ETA over the epochs, scoring included, then one over the
duplicate search), the default detector's
estimated set gives the label issues and the model's own prediction the suggested label,
:func:`~netprism.memorization.duplicate_scores` (up to a one-pixel shift) the conflicting
groups, and curvature outside both sets the memorized long tail.  Written to ``out_dir``:
``audit.html`` (self-contained), ``issues.csv`` (every sample ranked, with its scores and a
reason) and ``scores.safetensors``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.core.per_sample import predictions
from netprism.data.base import labels_of
from netprism.io import atomic_write_text, ensure_writable_dir
from netprism.memorization.audit_page import render_audit_page
from netprism.memorization.duplicates import duplicate_scores
from netprism.memorization.premise import PremiseCheck, check_premise
from netprism.memorization.scores import ALL_METHODS, MemorizationScores, memorization_scores
from netprism.memorization.select import (
    DEFAULT_LABEL_ISSUE_METHOD,
    DuplicateGroup,
    find_label_issues,
    group_pairs,
)
from netprism.train import TrainConfig
from netprism.train.data import make_source

__all__ = ["AuditReport", "audit"]


@dataclass
class AuditReport:
    """What :func:`audit` found (the page and the CSV show the same).

    Attributes
    ----------
    scores : MemorizationScores
    detector : str
        The score the label issues are ranked by.
    issues : LongTensor (M,)
        The estimated label issues, most suspicious first.
    suggested : LongTensor (N,)
        The trained model's prediction for every sample.
    duplicate_score : Tensor (N,)
        :func:`~netprism.memorization.duplicate_scores` (higher = closer to another label).
    duplicate_groups : list of DuplicateGroup
        Conflicting near-duplicates, closest first.
    memorized : LongTensor (K,)
        The highest-curvature samples outside the issues and the groups.
    premise : PremiseCheck
    files : dict of str to Path
    """

    scores: MemorizationScores
    detector: str
    issues: torch.Tensor
    suggested: torch.Tensor
    duplicate_score: torch.Tensor
    duplicate_groups: list[DuplicateGroup]
    memorized: torch.Tensor
    premise: PremiseCheck
    files: dict[str, Path] = field(default_factory=dict)


def audit(
    model_factory: Callable[[], nn.Module] | nn.Module,
    dataset: Any,
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path,
    score_data: Any = None,
    detector: str = DEFAULT_LABEL_ISSUE_METHOD,
    duplicate_shifts: int = 1,
    duplicate_ratio: float = 0.5,
    show: int = 48,
    class_names: list[str] | None = None,
) -> AuditReport:
    """Audit ``dataset``: label issues, conflicting near-duplicates, memorized samples.

    Parameters
    ----------
    model_factory : callable () -> nn.Module, or nn.Module
        As in :func:`~netprism.memorization.memorization_scores`.
    dataset : DataLoader, Dataset, TensorDataset or (x, y)
        The training data (a shuffled, augmented loader is fine; pass ``score_data``).
    config : TrainConfig, optional
        The recipe (default :func:`~netprism.memorization.default_config`, 100 epochs).
    out_dir : str or Path
        Where ``audit.html``, ``issues.csv`` and ``scores.safetensors`` go (created).
    score_data : optional
        The same samples without augmentation, index for index (default: ``dataset``):
        streamed for the model's suggestions and the duplicate search, read one at a time
        for the page's thumbnails.  Nothing holds all inputs in memory, so a lazy image
        folder larger than memory is audited in ``O(N)`` memory (plus ``N * D`` rows for an
        exact duplicate search below 50,000 samples).
    detector : str
        The score the label issues are ranked and counted by.
    duplicate_shifts : int
        Translations searched for near-duplicates (0: plain distance).
    duplicate_ratio : float in (0, 1]
        A sample and its nearest differently-labelled neighbour form a group when each of
        the two has a differently-labelled neighbour closer than ``duplicate_ratio`` times
        its nearest same-label neighbour (a mislabeled sample alone is close to its true
        class, but not the other way round: it is reported as a label issue, not a group).
    show : int
        Samples shown per section of the page.
    class_names : list of str, optional
        Label names for the page and the CSV (default: the dataset's, else the indices).

    Returns
    -------
    AuditReport
    """
    if not 0.0 < duplicate_ratio <= 1.0:
        raise ValueError(f"duplicate_ratio must lie in (0, 1], got {duplicate_ratio!r}")
    if detector not in ALL_METHODS:
        raise ValueError(f"detector must be one of {ALL_METHODS}, got {detector!r}")
    out = ensure_writable_dir(Path(out_dir))  # an unusable folder fails before the training
    plain = score_data if score_data is not None else dataset
    scores = memorization_scores(model_factory, dataset, config, score_data=score_data)
    y = labels_of(plain)
    issues = find_label_issues(scores, method=detector)
    assert scores.model is not None
    streamed = (batch.x for batch in make_source(plain, name="data").ordered(512))
    suggested = predictions(scores.model, streamed)
    dup, neighbor = duplicate_scores(
        plain, shifts=duplicate_shifts, return_neighbors=True, progress=True
    )
    groups = _duplicate_groups(dup, neighbor, y, duplicate_ratio)
    in_group = {int(i) for g in groups for i in g.indices}
    flagged = set(issues.tolist()) | in_group
    memorized = torch.tensor(
        [i for i in scores.ranked("curvature").tolist() if i not in flagged][:show],
        dtype=torch.long,
    )
    premise = check_premise(suggested == y, scores[detector], detector)
    report = AuditReport(scores, detector, issues, suggested, dup, groups, memorized, premise)
    info = getattr(plain, "info", None)
    names = class_names or getattr(info, "classes", None)
    files = getattr(info, "extra", {}).get("files")
    inputs = _shown_inputs(report, plain, show)
    report.files = _write(report, inputs, y, out, show, names, files)
    return report


def _shown_inputs(report: AuditReport, data: Any, show: int) -> dict[int, torch.Tensor]:
    """The inputs of the samples the page shows, read in one batch: index -> ``x``."""
    shown = {
        *report.issues[:show].tolist(),
        *(int(i) for g in report.duplicate_groups[:show] for i in g.indices),
        *report.memorized[:show].tolist(),
    }
    if not shown:
        return {}
    index = torch.tensor(sorted(shown))
    (batch,) = make_source(data, name="data").load([index])
    return {int(i): x for i, x in zip(index, batch.x)}


def _duplicate_groups(
    dup: torch.Tensor, neighbor: torch.Tensor, y: torch.Tensor, ratio: float
) -> list[DuplicateGroup]:
    near = dup >= -ratio
    # both ends close: a mislabeled sample is close to its true class, but that class's
    # samples have their own class closer still, so it forms no pair
    mutual = near & (neighbor >= 0) & near[neighbor.clamp_min(0)]
    pairs = [(i, int(neighbor[i]), float(-dup[i])) for i in mutual.nonzero().flatten().tolist()]
    return group_pairs(pairs, dup, y)


def _write(
    report: AuditReport,
    inputs: dict[int, torch.Tensor],
    y: torch.Tensor,
    out: Path,
    show: int,
    names: Any,
    sample_files: Any,
) -> dict[str, Path]:
    files = {
        "scores": report.scores.save(out / "scores.safetensors"),
        "csv": out / "issues.csv",
        "html": out / "audit.html",
    }
    if sample_files is not None and len(sample_files) != len(y):
        sample_files = None  # not one file per sample: leave the column out
    atomic_write_text(files["csv"], _csv(report, y, names, sample_files))
    atomic_write_text(files["html"], render_audit_page(report, inputs, y, show=show, names=names))
    return files


def _csv(report: AuditReport, y: torch.Tensor, names: Any, files: Any) -> str:
    """Every sample, most suspicious first by the detector, with its scores and a reason."""
    label = (lambda k: str(names[k])) if names else str
    group_of = {int(i): g for g, grp in enumerate(report.duplicate_groups) for i in grp.indices}
    issue_rank = {int(i): r for r, i in enumerate(report.issues.tolist())}
    memorized = set(report.memorized.tolist())
    methods = report.scores.names
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    where = ["file"] if files is not None else []
    writer.writerow(
        ["rank", "index", *where, "given_label", "suggested_label", "reason",
         "duplicate_group", "duplicate_score", *methods]
    )  # fmt: skip
    for rank, i in enumerate(report.scores.ranked(report.detector).tolist()):
        reasons = []
        if i in issue_rank:
            reasons.append(
                f"label issue ({report.detector} rank {issue_rank[i] + 1}; the model says "
                f"{label(int(report.suggested[i]))})"
            )
        if i in group_of:
            reasons.append(f"conflicting near-duplicate (group {group_of[i]})")
        if i in memorized:
            reasons.append("memorized long-tail sample (high curvature)")
        writer.writerow(
            [rank + 1, i, *([files[i]] if files is not None else []), label(int(y[i])),
             label(int(report.suggested[i])),
             "; ".join(reasons), group_of.get(i, ""), f"{float(report.duplicate_score[i]):.6g}",
             *(f"{float(report.scores[m][i]):.6g}" for m in methods)]
        )  # fmt: skip
    return buffer.getvalue()
