"""Figures and saved records of the ``hybrid_net`` experiment: significant-dimension curve
per layer, per-layer precision map, accuracy vs energy efficiency, the faithful variant's
mechanism (count / width per layer of the deep net), plus ``hybrid_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from netprism.experiments.hybrid_net.claims import acc_stat, energy_mean, label, layer_roles
from netprism.experiments.hybrid_net.config import HybridNetConfig
from netprism.experiments.hybrid_net.records import SeedRun, by_dataset
from netprism.io import atomic_write_text


def draw(runs: list[SeedRun], config: HybridNetConfig, out_dir: Path) -> list[str]:
    """The figures and ``hybrid_runs.json``; returns the figure file names."""
    groups = by_dataset(runs)  # the reproduced runs
    figures = [
        _plot_counts(groups, out_dir),
        _plot_precision_map(groups, out_dir),
        _plot_acc_energy(groups, out_dir),
    ]
    twins = [r for r in runs if r.faithful]
    if twins:
        figures.append(_plot_faithful(twins, config, out_dir))
    save_runs(runs, out_dir)
    return figures


def save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every dataset and seed's record, in run order (the faithful ones last, marked)."""
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


def _plot_faithful(twins: list[SeedRun], config: HybridNetConfig, out_dir: Path) -> str:
    """The faithful variant's mechanism: significant dimensions / width per layer of the deep
    XNOR net, one panel per lens, one line per threshold (mean over seeds, bars min..max),
    input channels / width marked, layers flagged on some seed starred (with how many)."""
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    r0, n = twins[0], len(twins)
    layers, widths = r0.layers[:-1], np.asarray(r0.widths, dtype=float)
    x = np.arange(len(layers))
    roles = layer_roles(r0)
    fig = Figure(figsize=(11, 3.8))
    other = "post" if config.faithful_where == "pre" else "pre"
    for ax, where in zip(fig.subplots(1, 2, sharey=True), (config.faithful_where, other)):
        for k, t in enumerate(config.faithful_thresholds):
            ratios = np.array([r.lens(where, t).counts for r in twins]) / widths  # (seeds, layers)
            mean = ratios.mean(axis=0)
            err = np.stack([mean - ratios.min(axis=0), ratios.max(axis=0) - mean])
            ax.errorbar(x, mean, yerr=err, fmt="-o", ms=4, capsize=2, color=f"C{k}",
                        label=f"{t:g} of the variance")  # fmt: skip
            flagged = [sum(name in r.lens(where, t).significant for r in twins) for name in layers]
            for i, hits in enumerate(flagged):
                if hits:
                    ax.plot(x[i], mean[i], "*", ms=13, color=f"C{k}", mec="black", mew=0.5)
                    ax.annotate(f"{hits}/{n}", (x[i], mean[i]), fontsize=6, xytext=(3, -9 - 7 * k),
                                textcoords="offset points", color=f"C{k}")  # fmt: skip
        ax.plot(x, np.asarray(r0.in_channels) / widths, "x", color="gray",
                label="input channels / width")  # fmt: skip
        ticks = [f"{name}{'+' if name in roles['widen'] else ''}\n{c}->{w}"
                 for name, c, w in zip(layers, r0.in_channels, r0.widths)]  # fmt: skip
        ax.set_xticks(x, ticks, fontsize=7)
        claim = " (the claim's)" if where == config.faithful_where else ""
        ax.set_title(f"{where} lens{claim}: * = flagged (seeds)", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.set(xlabel="layer (+ = widens; input -> output channels)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.axes[0].set_ylabel("significant dimensions / width")
    fig.suptitle(f"faithful variant on {r0.dataset}: {len(layers)} conv layers, {n} seed(s)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, out_dir / "hybrid_net_faithful_mechanism.png")
    return "hybrid_net_faithful_mechanism.png"
