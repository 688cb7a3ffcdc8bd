"""Figures and saved records of the ``space`` experiment: accuracy matrices, units used per
layer per task, per-task MAC fraction, ACC / BWT bars, and ``streams.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from netprism.experiments.space.claims import LABELS, stat
from netprism.experiments.space.config import METHODS, SPACEExperimentConfig
from netprism.experiments.space.records import SeedRuns
from netprism.io import atomic_write_text


def draw(runs: list[SeedRuns], config: SPACEExperimentConfig, out_dir: Path) -> list[str]:
    """The four figures and ``streams.json``; returns the figure file names."""
    figures = [
        _plot_matrices(runs[0], out_dir),
        _plot_units(runs, out_dir),
        _plot_macs(runs, out_dir),
        _plot_bars(runs, out_dir),
    ]
    save_streams(runs, out_dir)
    return figures


def _plot_matrices(run: SeedRuns, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import accuracy_matrix, save_figure

    kinds = list(run.streams)
    fig = Figure(figsize=(3.2 * len(METHODS), 3.2 * len(kinds)))
    axes = np.atleast_2d(fig.subplots(len(kinds), len(METHODS)))
    for row, kind in zip(axes, kinds):
        for ax, m in zip(row, METHODS):
            R = 100.0 * run.streams[kind].results[m].R.numpy()  # (T, T)
            accuracy_matrix(ax, R, title=f"{LABELS[m]}, {kind} (seed {run.seed})")
    fig.tight_layout()
    save_figure(fig, out_dir / "space_accuracy_matrices.png")
    return "space_accuracy_matrices.png"


def _plot_units(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    kinds = list(runs[0].streams)
    fig = Figure(figsize=(4.6 * len(kinds), 3.4))
    for ax, kind in zip(np.atleast_1d(fig.subplots(1, len(kinds))), kinds):
        first = runs[0].streams[kind]
        tasks = np.arange(1, len(first.units) + 1)
        for layer, width in first.widths.items():
            used = np.array([[u[layer] for u in r.streams[kind].units] for r in runs], float)
            err = used.std(axis=0, ddof=1) / width if len(runs) > 1 else None
            ax.errorbar(
                tasks, used.mean(0) / width, yerr=err, marker="o", capsize=3, label=f"{layer}"
            )
        ax.set(xlabel="after task", ylabel="units used / width", ylim=(0, 1.05), xticks=tasks)
        ax.set_title(f"SPACE Core per layer, {kind}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "space_units.png")
    return "space_units.png"


def _plot_macs(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for kind in runs[0].streams:
        frac = np.array([r.streams[kind].mac_fraction for r in runs]) * 100.0  # (seeds, T)
        tasks = np.arange(1, frac.shape[1] + 1)
        err = frac.std(axis=0, ddof=1) if len(runs) > 1 else None
        ax.errorbar(tasks, frac.mean(0), yerr=err, marker="o", capsize=3, label=kind)
    ax.axhline(100, color="black", lw=0.8, label="full network")
    ax.set(xlabel="task", ylabel="inference MACs (% of full)", ylim=(0, 105))
    ax.set_title("SPACE per-task cost")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "space_macs.png")
    return "space_macs.png"


def _plot_bars(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    kinds = list(runs[0].streams)
    fig = Figure(figsize=(8, 3.2))
    ax_acc, ax_bwt = fig.subplots(1, 2)
    width = 0.8 / len(kinds)
    x = np.arange(len(METHODS))
    for i, kind in enumerate(kinds):
        acc = [stat(runs, kind, m, "acc") for m in METHODS]
        bwt = [stat(runs, kind, m, "bwt") for m in METHODS]
        off = x + (i - (len(kinds) - 1) / 2) * width
        std = [0.0 if s != s else s for _, s in acc]
        ax_acc.bar(off, [a for a, _ in acc], width, yerr=std, capsize=3, label=kind)
        std = [0.0 if s != s else s for _, s in bwt]
        ax_bwt.bar(off, [b for b, _ in bwt], width, yerr=std, capsize=3, label=kind)
    for ax, name in ((ax_acc, "ACC"), (ax_bwt, "BWT")):
        ax.set_xticks(x, [LABELS[m] for m in METHODS])
        ax.set_ylabel(f"{name} (points)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend()
    ax_acc.set(ylim=(0, 100), title=f"final accuracy ({len(runs)} seeds)")
    ax_bwt.axhline(0, color="black", lw=0.8)
    ax_bwt.set_title("backward transfer")
    fig.tight_layout()
    save_figure(fig, out_dir / "space_acc_bwt_bars.png")
    return "space_acc_bwt_bars.png"


def save_streams(runs: list[SeedRuns], out_dir: Path) -> None:
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
