"""Figures and saved records of the ``gpm`` experiment: accuracy matrices, GPM memory per
layer per task, ACC / BWT bars, the threshold sweep, and ``streams.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from netprism.experiments.gpm.claims import LABELS, joint_stat, stat, sweep_curve
from netprism.experiments.gpm.config import METHODS, GPMExperimentConfig
from netprism.experiments.gpm.records import SeedRuns
from netprism.io import atomic_write_text


def draw(runs: list[SeedRuns], config: GPMExperimentConfig, out_dir: Path) -> list[str]:
    """The four figures and ``streams.json``; returns the figure file names."""
    figures = [
        _plot_matrices(runs[0], out_dir),
        _plot_memory(runs, out_dir),
        _plot_bars(runs, out_dir),
        _plot_sweep(runs, out_dir),
    ]
    save_streams(runs, out_dir)
    return figures


def _plot_matrices(run: SeedRuns, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import accuracy_matrix, save_figure

    fig = Figure(figsize=(3.2 * len(METHODS), 3.2))
    for ax, m in zip(fig.subplots(1, len(METHODS)), METHODS):
        R = 100.0 * run.streams[m].R.numpy()  # (T, T)
        accuracy_matrix(ax, R, title=f"{LABELS[m]} (seed {run.seed})")
    fig.tight_layout()
    save_figure(fig, out_dir / "accuracy_matrices.png")
    return "accuracy_matrices.png"


def _plot_memory(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    tasks = np.arange(1, len(runs[0].memory) + 1)
    for layer, d in runs[0].fan_in.items():
        used = np.array([[sizes[layer] for sizes in r.memory] for r in runs], dtype=float)
        err = used.std(axis=0, ddof=1) if len(runs) > 1 else None
        ax.errorbar(
            tasks,
            used.mean(axis=0) / d,
            yerr=None if err is None else err / d,
            marker="o",
            capsize=3,
            label=f"{layer} (D={d})",
        )
    ax.set(
        xlabel="after task",
        ylabel="memory used K / D",
        ylim=(0, 1.05),
        title="GPM memory per layer",
        xticks=tasks,
    )
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "gpm_memory.png")
    return "gpm_memory.png"


def _plot_bars(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(8, 3.2))
    ax_acc, ax_bwt = fig.subplots(1, 2)
    acc = [stat(runs, m, "acc") for m in METHODS]
    acc.append(joint_stat(runs))
    bwt = [stat(runs, m, "bwt") for m in METHODS]
    names = [LABELS[m] for m in (*METHODS, "joint")]
    ax_acc.bar(names, [a for a, _ in acc], yerr=[s for _, s in acc], capsize=4, color="C0")
    ax_bwt.bar(names[:-1], [b for b, _ in bwt], yerr=[s for _, s in bwt], capsize=4, color="C3")
    ax_acc.set(ylabel="ACC (points)", title=f"final accuracy ({len(runs)} seeds)", ylim=(0, 100))
    ax_bwt.set(ylabel="BWT (points)", title="backward transfer")
    ax_bwt.axhline(0, color="black", lw=0.8)
    for ax in (ax_acc, ax_bwt):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "acc_bwt_bars.png")
    return "acc_bwt_bars.png"


def _plot_sweep(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    eps = list(runs[0].sweep)
    pos = np.arange(len(eps))  # categorical: 0.99 and 0.999 would overlap on a linear axis
    for key, label, color in (
        ("bwt", "BWT", "C3"),
        ("la", "LA (plasticity)", "C2"),
        ("acc", "ACC", "C0"),
    ):
        mean, std = sweep_curve(runs, key)
        ax.errorbar(pos, mean, yerr=std, marker="o", capsize=3, label=label, color=color)
    ax.set_xticks(pos, [f"{e:g}" for e in eps])
    ax.set(
        xlabel="threshold eps (all layers)",
        ylabel="points",
        title="GPM stability-plasticity trade-off",
    )
    ax.axhline(0, color="black", lw=0.8)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "stability_plasticity.png")
    return "stability_plasticity.png"


def save_streams(runs: list[SeedRuns], out_dir: Path) -> None:
    """Every accuracy matrix (fractions) per seed, method and sweep threshold: streams.json."""
    data = {
        str(r.seed): {
            "methods": {name: s.to_dict() for name, s in r.streams.items()},
            "joint": r.joint.tolist(),
            "sweep": {str(eps): s.to_dict() for eps, s in r.sweep.items()},
            "gpm_memory": r.memory,
            "fan_in": r.fan_in,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "streams.json", json.dumps(data, indent=1))
