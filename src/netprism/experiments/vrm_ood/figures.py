"""Figures and saved records of the ``vrm_ood`` experiment: score histograms in vs out and ROC
curves, both from the first seed, and ``ood_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from netprism.core.metrics import roc_curve
from netprism.experiments.vrm_ood.config import VRMOODConfig
from netprism.experiments.vrm_ood.records import SeedRun
from netprism.io import atomic_write_text
from netprism.report.figures import save_figure

HIST_DETECTORS = ("msp", "odin", "mahalanobis", "vrm")
ROC_DETECTORS = ("msp", "maxlogit", "energy", "odin", "mahalanobis", "mixup_msp", "vrm")


def draw(runs: list[SeedRun], config: VRMOODConfig, out_dir: Path) -> list[str]:
    """Both figures (first seed) and ``ood_runs.json``; returns the figure file names."""
    figures = plot_all(runs[0], out_dir)
    save_runs(runs, out_dir)
    return figures


def plot_all(run: SeedRun, out_dir: Path) -> list[str]:
    """Both figures from one seed's scores; returns their file names."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    sets = list(dict.fromkeys(s for _, s in run.out_scores))
    fig = Figure(figsize=(3.0 * len(sets), 2.4 * len(HIST_DETECTORS)))
    axes = fig.subplots(len(HIST_DETECTORS), len(sets), squeeze=False)
    for i, det in enumerate(HIST_DETECTORS):
        for j, s in enumerate(sets):
            ax = axes[i][j]
            s_in, s_out = run.in_scores[det].numpy(), run.out_scores[(det, s)].numpy()
            bins = np.linspace(min(s_in.min(), s_out.min()), max(s_in.max(), s_out.max()), 31)
            ax.hist(s_in, bins=bins, alpha=0.6, density=True, label="in", color="#0969da")
            ax.hist(s_out, bins=bins, alpha=0.6, density=True, label="out", color="#cf222e")
            auroc = run.metrics[(det, s)]["auroc"]
            ax.set_title(f"{det} / {s} (AUROC {auroc:.3f})", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.subplots_adjust(hspace=0.55, wspace=0.3)
    fig.suptitle(f"OoD scores (higher = more OoD), seed {run.seed}")
    names = ["vrm_ood_histograms.png"]
    save_figure(fig, out_dir / names[0])

    fig = Figure(figsize=(3.2 * len(sets), 3.2))
    axes = fig.subplots(1, len(sets), squeeze=False)
    for j, s in enumerate(sets):
        ax = axes[0][j]
        for det in ROC_DETECTORS:
            t_in, t_out = run.in_scores[det], run.out_scores[(det, s)]
            labels = torch.cat([torch.zeros(len(t_in)), torch.ones(len(t_out))])
            fpr, tpr = roc_curve(labels, torch.cat([t_in, t_out]))
            ax.plot(fpr.numpy(), tpr.numpy(), label=det, lw=1.2)
        ax.plot([0, 1], [0, 1], color="#8c959f", lw=0.8, ls="--")
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("FPR (in flagged)", fontsize=7)
        ax.set_ylabel("TPR (OoD flagged)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"ROC curves, OoD = positive, seed {run.seed}", y=1.04)
    names.append("vrm_ood_roc.png")
    save_figure(fig, out_dir / names[1])
    return names


def save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every detector's metrics on every OoD set, per seed, and the overhead table."""
    data = {
        str(r.seed): {
            "accuracy": r.accuracy,
            "metrics": {f"{d}/{s}": m for (d, s), m in r.metrics.items()},
            "overhead": r.overhead,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "ood_runs.json", json.dumps(data, indent=1))
