"""Figures and saved records of the ``hybrid_net`` experiment: significant-dimension curve
per layer, per-layer precision map, accuracy vs energy efficiency, plus ``hybrid_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from netprism.experiments.hybrid_net.claims import acc_stat, energy_mean, label
from netprism.experiments.hybrid_net.config import HybridNetConfig
from netprism.experiments.hybrid_net.records import SeedRun, by_dataset
from netprism.io import atomic_write_text


def draw(runs: list[SeedRun], config: HybridNetConfig, out_dir: Path) -> list[str]:
    """The three figures and ``hybrid_runs.json``; returns the figure file names."""
    groups = by_dataset(runs)
    figures = [
        _plot_counts(groups, out_dir),
        _plot_precision_map(groups, out_dir),
        _plot_acc_energy(groups, out_dir),
    ]
    save_runs(runs, out_dir)
    return figures


def save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every dataset and seed's record, in run order."""
    data_out = [r.to_dict() for r in runs]
    atomic_write_text(out_dir / "hybrid_runs.json", json.dumps(data_out, indent=1))


def _plot_counts(groups: dict[str, list[SeedRun]], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(4.6 * len(groups), 3.4))
    for ax, (ds, rs) in zip(np.atleast_1d(fig.subplots(1, len(groups))), groups.items()):
        layers = rs[0].significant.layers
        x = np.arange(len(layers))
        for k, r in enumerate(rs):
            for sig, style in ((r.significant, "-o"), (r.significant_other, "--s")):
                color = f"C{k}"  # one colour per seed; solid = selection lens, dashed = other
                ax.plot(x, sig.counts, style, color=color, alpha=0.8, ms=4,
                        label=f"seed {r.seed}, {sig.where}")  # fmt: skip
                hit = [i for i, n in enumerate(layers) if n in sig.significant]
                ax.plot(x[hit], np.asarray(sig.counts)[hit], "*", ms=12, color=color)
        ax.set_xticks(x, layers)
        ax.set(xlabel="layer", ylabel=f"components for {rs[0].significant.threshold:g} var.")
        ax.set_title(f"significant dimensions, {ds} (* = flagged)")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "hybrid_net_significant_dims.png")
    return "hybrid_net_significant_dims.png"


def _plot_precision_map(groups: dict[str, list[SeedRun]], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5.2 * len(groups), 3.2))
    for ax, (ds, rs) in zip(np.atleast_1d(fig.subplots(1, len(groups))), groups.items()):
        r = rs[0]
        keys = list(r.precisions)
        bits = np.array([r.precisions[k] for k in keys], dtype=float)  # (models, layers)
        ax.imshow(np.log2(bits), cmap="viridis", vmin=0, vmax=5, aspect="auto")
        share = [np.asarray(r.layer_energy_pj[k]) / sum(r.layer_energy_pj[k]) for k in keys]
        for (i, j), b in np.ndenumerate(bits):
            text = f"{'FP' if b == 32 else int(b)}\n{100 * share[i][j]:.0f}%"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="black" if b >= 16 else "white")  # fmt: skip
        ax.set_xticks(range(len(r.layers)), r.layers)
        ax.set_yticks(range(len(keys)), [label(k) for k in keys])
        ax.set_title(f"bits per layer (and energy share), {ds}, seed {r.seed}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_dir / "hybrid_net_precision_map.png")
    return "hybrid_net_precision_map.png"


def _plot_acc_energy(groups: dict[str, list[SeedRun]], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(4.6 * len(groups), 3.6))
    for ax, (ds, rs) in zip(np.atleast_1d(fig.subplots(1, len(groups))), groups.items()):
        for key in rs[0].precisions:
            acc = acc_stat(rs, key)
            eff = energy_mean(rs, key, "efficiency_vs_fp")
            ax.errorbar(eff, acc[0], yerr=acc[1], fmt="o", capsize=3, label=label(key))
            frac = 100 * energy_mean(rs, key, "fraction_of_xnor")
            ax.annotate(f"{frac:.0f}%", (eff, acc[0]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set(xlabel="energy efficiency vs FP (x, log)", ylabel="test accuracy (%)")
        ax.set_title(f"{ds}: accuracy vs efficiency ({len(rs)} seeds; % of XNOR's)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "hybrid_net_acc_vs_energy.png")
    return "hybrid_net_acc_vs_energy.png"
