"""Claims and metrics of the ``hierarchy`` experiment.

Pure summaries of the records: accuracies in percentage points, graphical distances
(catastrophic coefficients) in tree edges.  Gains are paired per seed (hierarchical minus flat
on the same data, split and initial trunk), then averaged.  ``hier_shift_accuracy`` and
``hier_distance`` read the reproduced runs only; ``hier_shift_accuracy_faithful`` reads the
faithful grid at the calibrated subpopulation offset s*, with its mechanism as diagnosis.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from netprism.core.metrics import spearman
from netprism.core.results import Claim, mean_std
from netprism.core.results import format_pm as pm
from netprism.experiments.hierarchy.records import (
    FaithfulRecord,
    HierarchyRecords,
    SeedRun,
    flat_profile,
)

LABELS = {
    "flat": "flat",
    "sequential": "hierarchical (sequential)",
    "combined": "hierarchical (combined loss)",
    "bcnn": "BCNN-style",
}
KEYS = ("seen_acc", "unseen_acc", "seen_dist", "unseen_dist")
# LIVING-17 seen->unseen A (FGVC9 poster, mean of 5 seeds): the source of the headline claims
PAPER = {"flat_unseen": 57.02, "hier_unseen": 60.53, "flat_seen": 92.30, "hier_seen": 93.17}
PAPER_DIST = (1.75, 1.55)


def stat(runs: list[SeedRun], method: str, key: str) -> tuple[float, float]:
    """Mean and std over seeds of one method's ``key``."""
    return mean_std([getattr(r.methods[method], key) for r in runs])


def _gain(runs: list[SeedRun], key: str, method: str = "sequential") -> tuple[float, float]:
    return mean_std(
        [getattr(r.methods[method], key) - getattr(r.methods["flat"], key) for r in runs]
    )


def claims_and_metrics(
    records: HierarchyRecords, config: Any
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The two claims and the faithful twin, the flat metrics and the baselines' numbers."""
    runs = records.runs
    methods = list(runs[0].methods)
    metrics: dict[str, float] = {"n_seeds": float(len(runs))}
    baselines: dict[str, dict[str, float]] = {}
    for m in methods:
        for key in KEYS:
            metrics[f"{m}_{key}"], metrics[f"{m}_{key}_std"] = stat(runs, m, key)
        if m != "sequential":
            baselines[m] = {key: metrics[f"{m}_{key}"] for key in KEYS}
        if m != "flat":
            for key in KEYS:
                metrics[f"{m}_{key}_gain"], metrics[f"{m}_{key}_gain_std"] = _gain(runs, key, m)
    claims = [_claim_accuracy(runs, config, methods), _claim_distance(runs)]
    if records.faithful is not None:
        claims.append(_claim_accuracy_faithful(records.faithful, config, metrics))
    return claims, metrics, baselines


def _claim_accuracy(runs: list[SeedRun], config: Any, methods: list[str]) -> Claim:
    unseen, seen = _gain(runs, "unseen_acc"), _gain(runs, "seen_acc")
    others = "".join(
        f"; {LABELS[m]} unseen {pm(stat(runs, m, 'unseen_acc'))}, seen "
        f"{pm(stat(runs, m, 'seen_acc'))}"
        for m in methods
        if m not in ("flat", "sequential")
    )
    paper_gain = PAPER["hier_unseen"] - PAPER["flat_unseen"]
    paper_seen = PAPER["hier_seen"] - PAPER["flat_seen"]
    return Claim(
        id="hier_shift_accuracy",
        text=f"on the planted tree ({len(runs)} seeds), hierarchical conditional training is at "
        f"least as accurate as a flat classifier of the same width on unseen subpopulations "
        f"and loses at most {config.max_seen_drop:g} point on seen ones: unseen "
        f"{pm(stat(runs, 'sequential', 'unseen_acc'))} vs flat "
        f"{pm(stat(runs, 'flat', 'unseen_acc'))} %, paired gain {pm(unseen, 2)} points "
        f"(paper, LIVING-17 A: +{paper_gain:.2f}, {PAPER['flat_unseen']} -> "
        f"{PAPER['hier_unseen']}); seen {pm(stat(runs, 'sequential', 'seen_acc'))} vs flat "
        f"{pm(stat(runs, 'flat', 'seen_acc'))} %, change {pm(seen, 2)} points (paper "
        f"+{paper_seen:.2f}){others}. measured = min(unseen gain, seen change + "
        f"{config.max_seen_drop:g}), so it holds only when both parts hold",
        measured=min(unseen[0], seen[0] + config.max_seen_drop),
        target=0.0,
        op=">=",
        baseline=stat(runs, "flat", "unseen_acc")[0],
        baseline_name="flat unseen accuracy (%)",
    )


def _claim_distance(runs: list[SeedRun]) -> Claim:
    hier, flat = (
        stat(runs, "sequential", "unseen_dist"),
        stat(runs, "flat", "unseen_dist"),
    )
    rel = 100.0 * (hier[0] - flat[0]) / flat[0] if flat[0] > 0 else float("nan")
    paper_rel = 100.0 * (PAPER_DIST[1] - PAPER_DIST[0]) / PAPER_DIST[0]
    lower = sum(r.methods["sequential"].unseen_dist < r.methods["flat"].unseen_dist for r in runs)
    return Claim(
        id="hier_distance",
        text=f"hierarchical training lowers the mean graphical distance (catastrophic "
        f"coefficient, 0/2/4/6 per sample) on unseen subpopulations ({len(runs)} seeds): "
        f"{pm(hier, 3)} vs flat {pm(flat, 3)}, {rel:+.1f} %, paired change "
        f"{pm(_gain(runs, 'unseen_dist'), 3)} (lower in {lower} of {len(runs)} seeds; "
        f"paper, LIVING-17 A: "
        f"{PAPER_DIST[0]} -> {PAPER_DIST[1]}, {paper_rel:+.1f} %); seen "
        f"{pm(stat(runs, 'sequential', 'seen_dist'), 3)} vs flat "
        f"{pm(stat(runs, 'flat', 'seen_dist'), 3)}; measured = hierarchical unseen distance",
        measured=hier[0],
        target=flat[0],
        op="<",
        baseline=flat[0],
        baseline_name="flat unseen distance",
    )


def paired_points(record: FaithfulRecord) -> list[tuple[float, float, float]]:
    """Per (grid value, claim seed): (grid value, the flat model's edges per unseen mistake,
    paired unseen gain of the sequential model in points)."""
    return [
        (
            scale,
            r.methods["flat"].edges_per_mistake,
            r.methods["sequential"].unseen_acc - r.methods["flat"].unseen_acc,
        )
        for scale in sorted(record.grid)
        for r in record.grid[scale]
    ]


def _claim_accuracy_faithful(
    record: FaithfulRecord, config: Any, metrics: dict[str, float]
) -> Claim:
    """``hier_shift_accuracy`` at the calibrated offset s* with the paper's recipe (NaN, not
    assessed, when no grid value makes the flat model's shift as strong and deep as
    LIVING-17's); diagnosed by the calibration and the gain across the whole grid."""
    grid = sorted(record.grid)
    s = record.chosen
    points = paired_points(record)
    rho = spearman(torch.tensor([p[1] for p in points]), torch.tensor([p[2] for p in points]))
    metrics["faithful_subpop_scale"] = math.nan if s is None else s
    metrics["faithful_gain_edges_spearman"] = rho
    for scale in grid:
        metrics[f"faithful_unseen_gain_at_{scale:g}"] = _gain(record.grid[scale], "unseen_acc")[0]
    seeds = [r.seed for r in record.grid[grid[0]]]
    if s is None:
        claim = Claim(
            id="hier_shift_accuracy_faithful",
            text=f"not assessed: no subpopulation offset in {grid} gives the flat model unseen "
            f"/ seen accuracy <= {config.faithful_max_ratio:g} and >= "
            f"{config.faithful_min_edges:g} edges per unseen mistake on the calibration seeds "
            f"(the bounds are not relaxed)",
            measured=math.nan,
            target=0.0,
            op=">=",
        )
    else:
        runs = record.grid[s]
        claim = _claim_accuracy(runs, config, ["flat", "sequential"])
        claim.id = "hier_shift_accuracy_faithful"
        claim.text = (
            f"at the calibrated subpopulation offset s* = {s:g} with the paper's recipe (SGD "
            f"lr {config.faithful_lr:g}, batch {config.faithful_batch_size}, "
            f"{config.faithful_epochs} epochs, best epoch on {config.faithful_val_fraction:.0%} "
            f"held-out seen samples), {claim.text}"
        )
        unseen, seen = _gain(runs, "unseen_acc"), _gain(runs, "seen_acc")
        metrics["faithful_unseen_gain"], metrics["faithful_unseen_gain_std"] = unseen
        metrics["faithful_seen_gain"], metrics["faithful_seen_gain_std"] = seen
        ratio, edges = flat_profile(runs)
        metrics["faithful_flat_ratio"], metrics["faithful_flat_edges"] = ratio, edges
    claim.settings = {
        "subpop_scale": s,
        "subpop_scale_grid": grid,
        "calibration_seeds": list(config.faithful_calibration_seeds),
        "max_flat_ratio": config.faithful_max_ratio,
        "min_flat_edges_per_mistake": config.faithful_min_edges,
        "lr": config.faithful_lr,
        "batch_size": config.faithful_batch_size,
        "epochs": config.faithful_epochs,
        "val_fraction": config.faithful_val_fraction,
        "checkpoint": "best seen-validation accuracy",
    }
    claim.seeds = seeds
    claim.diagnosis = _diagnosis(record, config, rho, len(points))
    return claim


def _diagnosis(record: FaithfulRecord, config: Any, rho: float, n_points: int) -> str:
    """The calibration (flat shift per grid value), the shift and per-level unseen accuracy
    at s*, and the paired gain across the grid with its rank correlation to severity."""
    grid = sorted(record.grid)
    profile = ", ".join(
        "{:g}: {:.2f} / {:.2f}".format(v, *flat_profile(record.calibration[v])) for v in grid
    )
    seeds = ", ".join(str(r.seed) for r in record.calibration[grid[0]])
    gains = ", ".join(f"{v:g}: {_gain(record.grid[v], 'unseen_acc')[0]:+.2f}" for v in grid)
    text = (
        f"calibration, flat model on seeds {seeds}: unseen / seen accuracy and edges per unseen "
        f"mistake by subpopulation offset {profile} (paper 0.62 / 4.07); "
    )
    s = record.chosen
    if s is None:
        text += "no offset qualifies; "
    else:
        runs = record.grid[s]
        ratio, edges = flat_profile(runs)
        levels = {m: _levels(runs, m) for m in ("flat", "sequential")}
        text += (
            f"s* = {s:g}; there on the claim seeds the flat model has {ratio:.2f} / "
            f"{edges:.2f}, unseen accuracy by level (superclass / mid node / class) flat "
            f"{levels['flat']} vs hierarchical {levels['sequential']} %; "
        )
    return text + (
        f"paired unseen gain (hierarchical - flat, points) by offset {gains}; Spearman "
        f"{rho:+.2f} between the flat model's edges per unseen mistake and the paired gain "
        f"over {n_points} (offset, seed) pairs"
    )


def _levels(runs: list[SeedRun], method: str) -> str:
    """Mean unseen accuracy per level over seeds, as ``a / b / c``."""
    per_level = zip(*(r.methods[method].unseen_level_acc for r in runs))
    return " / ".join(f"{sum(v) / len(runs):.1f}" for v in per_level)
