"""Figures and saved records of the ``dub_crossbar`` experiment: per-crossbar level
histograms and energy savings, plus ``runs.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from netprism.experiments.dub_crossbar.claims import LABELS, METHODS, stat
from netprism.experiments.dub_crossbar.config import DUBCrossbarConfig
from netprism.experiments.dub_crossbar.records import SeedRun
from netprism.io import atomic_write_text


def draw(runs: list[SeedRun], config: DUBCrossbarConfig, out_dir: Path) -> list[str]:
    """The two figures and ``runs.json``; returns the figure file names."""
    figures = [_plot_levels(runs, config, out_dir), _plot_savings(runs, config, out_dir)]
    save_runs(runs, out_dir)
    return figures


def save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every seed's arms and regularizer history, keyed by seed."""
    data = {str(r.seed): r.to_dict() for r in runs}
    atomic_write_text(out_dir / "runs.json", json.dumps(data, indent=1))


def _plot_levels(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    sparsities = list(config.sparsities)
    fig = Figure(figsize=(5.2 * len(sparsities), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(sparsities)))
    labels = list(runs[0].arms[(METHODS[0], sparsities[0])].histogram)
    x = np.arange(len(labels))
    width = 0.8 / len(METHODS)
    for ax, s in zip(axes, sparsities):
        for i, m in enumerate(METHODS):
            counts = np.mean([[r.arms[(m, s)].histogram[k] for k in labels] for r in runs], 0)
            ax.bar(x + (i - (len(METHODS) - 1) / 2) * width, counts, width, label=LABELS[m])
        ax.set_xticks(x, labels)
        ax.set(xlabel="crossbar level k (bits saved; 'zero' = all-zero)", ylabel="crossbars")
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        ax.set_title(f"{100 * s:g} % sparsity, {config.size}x{config.size} ({seeds}, mean)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "dub_crossbar_levels.png")
    return "dub_crossbar_levels.png"


def _plot_savings(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    sparsities = list(config.sparsities)
    fig = Figure(figsize=(9, 3.4))
    x = np.arange(len(sparsities))
    width = 0.8 / len(METHODS)
    for ax, key, name in zip(
        fig.subplots(1, 2), ("saving_exp2", "saving_linear"), ("E = 2^b", "E linear in b")
    ):
        for i, m in enumerate(METHODS):
            stats = [stat(runs, m, s, key) for s in sparsities]
            off = x + (i - (len(METHODS) - 1) / 2) * width
            means, stds = [a for a, _ in stats], [b for _, b in stats]
            ax.bar(off, means, width, yerr=stds, capsize=3, label=LABELS[m])
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(x, [f"{100 * s:g} %" for s in sparsities])
        ax.set(xlabel="overall sparsity", ylabel="ADC-energy saving (x)", title=name)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "dub_crossbar_savings.png")
    return "dub_crossbar_savings.png"
