"""Claim, metrics and baselines of the ``pca_design`` experiment.

Accuracies are fractions, drops are points (100 x the fraction), reductions are ratios
(before / after: 3.0 = 3x fewer).  Means over seeds; a single seed has std 0.
"""

from __future__ import annotations

import statistics
from typing import Any

from netprism.core.results import Claim
from netprism.experiments.pca_design.config import PCADesignConfig
from netprism.experiments.pca_design.records import L1Run, SeedRun


def _mean(xs: list[float]) -> float:
    return float(statistics.fmean(xs)) if xs else float("nan")


def _std(xs: list[float]) -> float:
    return float(statistics.stdev(xs)) if len(xs) > 1 else 0.0


def claims_and_metrics(
    runs: list[SeedRun], config: PCADesignConfig
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The reduction claim at the first threshold, the flat metrics and the L1 baselines."""
    metrics, baselines = _summarize(config, runs)
    return [_claim(config, metrics, baselines)], metrics, baselines


def designs(runs: list[SeedRun], config: PCADesignConfig) -> dict[str, dict[str, Any]]:
    """The first seed's design at every threshold (model config and report), recorded in the
    result's config under ``"designs"``."""
    first = runs[0].designs
    return {
        f"t{thr:g}": {"config": first[thr].config, "report": first[thr].report.to_dict()}
        for thr in config.thresholds
    }


def _summarize(
    config: PCADesignConfig, runs: list[SeedRun]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    orig = [r.original for r in runs]
    metrics: dict[str, float] = {"original_accuracy": _mean(orig), "original_std": _std(orig)}
    baselines: dict[str, dict[str, float]] = {}
    for thr in config.thresholds:
        reps = [r.designs[thr].report for r in runs]
        acc = [r.designs[thr].designed for r in runs]
        drops = [100 * (o - a) for o, a in zip(orig, acc)]
        tag = f"t{thr:g}"
        metrics |= {
            f"{tag}_designed_accuracy": _mean(acc),
            f"{tag}_drop_points": _mean(drops),
            f"{tag}_drop_points_std": _std(drops),
            f"{tag}_param_reduction": _mean([r.param_reduction for r in reps]),
            f"{tag}_mac_reduction": _mean([r.mac_reduction for r in reps]),
            f"{tag}_params_after": _mean([float(r.params_after) for r in reps]),
            f"{tag}_macs_after": _mean([float(r.macs_after) for r in reps]),
            f"{tag}_layers_kept": _mean([float(sum(ly.kept for ly in r.layers)) for r in reps]),
        }
        l1 = [b for r in runs if (b := r.designs[thr].l1) is not None]
        if l1:
            baselines[f"l1_pruning_{tag}"] = _l1_summary(orig, l1)
    return metrics, baselines


def _l1_summary(orig: list[float], l1: list[L1Run]) -> dict[str, float]:
    l1_drops = [100 * (o - b.accuracy) for o, b in zip(orig, l1)]
    return {
        "accuracy": _mean([b.accuracy for b in l1]),
        "drop_points": _mean(l1_drops),
        "drop_points_std": _std(l1_drops),
        "params": _mean([float(b.params) for b in l1]),
        "macs": _mean([float(b.macs) for b in l1]),
        "pruning_ratio": _mean([b.pruning_ratio for b in l1]),
        "mac_error": _mean([b.mac_error for b in l1]),
    }


def _claim(
    config: PCADesignConfig, metrics: dict[str, float], baselines: dict[str, dict[str, float]]
) -> Claim:
    thr = config.thresholds[0]
    tag = f"t{thr:g}"
    l1 = baselines.get(f"l1_pruning_{tag}")
    l1_text = (
        f"; L1 filter pruning to equal MACs ({l1['params']:.0f} params), fine-tuned "
        f"{config.epochs} epochs, drops {l1['drop_points']:.2f} points"
        if l1
        else "; L1 baseline skipped: torch-pruning is not installed"
    )
    return Claim(
        id="pca_design_reduction",
        text=f"PCA design at {thr:.1%} variance (VGG-{config.depth} x{config.width_mult:g} on "
        f"{config.dataset}, seeds {list(config.seeds)}) has "
        f"{metrics[f'{tag}_param_reduction']:.2f}x fewer params and "
        f"{metrics[f'{tag}_mac_reduction']:.2f}x fewer MACs, trained from scratch "
        f"{config.epochs} epochs, with accuracy drop (points, mean) <= {config.max_drop:g}"
        + l1_text,
        measured=metrics[f"{tag}_drop_points"],
        target=config.max_drop,
        op="<=",
        baseline=None if l1 is None else l1["drop_points"],
        baseline_name=None if l1 is None else "L1 filter pruning at equal MACs (drop, points)",
    )
