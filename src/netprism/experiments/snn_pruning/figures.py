"""Figures and saved records of the ``snn_pruning`` experiment: widths per quantity,
accuracy vs T, accuracy vs bits and energy, plus ``snn_pruning_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from netprism.experiments.snn_pruning.config import SNNPruningConfig, faithful_config
from netprism.experiments.snn_pruning.records import SeedRun
from netprism.io import atomic_write_text


def draw(records: list[SeedRun], config: SNNPruningConfig, out_dir: Path) -> list[str]:
    """The figures and ``snn_pruning_runs.json``; returns the figure file names."""
    runs = [r for r in records if not r.faithful]
    twins = [r for r in records if r.faithful]
    figures = [
        _plot_widths(runs, config, out_dir),
        _plot_temporal(runs, config, out_dir),
        _plot_quant(runs, out_dir),
        _plot_energy(runs, config, out_dir),
    ]
    if twins:
        figures.append(_plot_mechanism(runs, twins, config, out_dir))
    save_runs(records, out_dir)
    return figures


def save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every seed's record, keyed by seed (``faithful-<seed>`` for the faithful variant)."""
    data = {f"{'faithful-' if r.faithful else ''}{r.seed}": r.to_dict() for r in runs}
    atomic_write_text(out_dir / "snn_pruning_runs.json", json.dumps(data, indent=1))


def _plot_widths(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    keys = list(runs[0].widths)
    mean = np.mean([[r.widths[k] for k in keys] for r in runs], axis=0)  # (rules, layers)
    fig = Figure(figsize=(max(6, 1.1 * len(keys)), 3.6))
    ax = fig.subplots()
    x = np.arange(len(keys))
    n_layers = mean.shape[1]
    for i in range(n_layers):
        off = x + (i - (n_layers - 1) / 2) * 0.8 / n_layers
        ax.bar(off, mean[:, i], 0.8 / n_layers, label=f"hidden layer {i + 1}")
    for i, width in enumerate(config.hidden):
        ax.axhline(width, color=f"C{i}", lw=0.8, ls="--")
    ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="PCA width", title="significant width by PCA'd quantity @ threshold")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_widths.png")
    return "snn_widths.png"


def _plot_temporal(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    ts = [config.t0, *config.stages]
    acc = np.array([[100 * r.staged[t] for t in ts] for r in runs])
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    err = acc.std(axis=0, ddof=1) if len(runs) > 1 else None
    ax.errorbar(ts, acc.mean(0), yerr=err, marker="o", capsize=3, label="staged (pruned SNN)")
    direct = np.array([100 * r.direct_final for r in runs])
    derr = [direct.std(ddof=1)] if len(runs) > 1 else None
    ax.errorbar([ts[-1]], [direct.mean()], yerr=derr, marker="s", capsize=3, color="C3",
                ls="none", label=f"direct at T={ts[-1]}")  # fmt: skip
    ax.set(xscale="log", xlabel="time steps T", ylabel="test accuracy (%)")
    ax.set_title("temporal pruning")
    ax.minorticks_off()
    ax.set_xticks(ts, [str(t) for t in ts])
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_temporal.png")
    return "snn_temporal.png"


def _plot_quant(runs: list[SeedRun], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    bits = list(runs[0].quant_snn)
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for name, attr, ref in (("SNN", "quant_snn", "full"), ("ANN", "quant_ann", "ann")):
        acc = np.array([[100 * getattr(r, attr)[b] for b in bits] for r in runs])
        ax.plot(bits, acc.mean(0), marker="o", label=name)
        ax.axhline(100 * np.mean([getattr(r, ref) for r in runs]), lw=0.8, ls="--",
                   color="C0" if name == "SNN" else "C1")  # fmt: skip
    ax.set(xlabel="weight bits", ylabel="test accuracy (%)", title="post-training quantization")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_quantization.png")
    return "snn_quantization.png"


def _plot_energy(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    values = [
        np.mean([r.energy_full["ann_pj"] for r in runs]),
        np.mean([r.energy_full["snn_pj"] for r in runs]),
        np.mean([r.energy_pruned["snn_pj"] for r in runs]),
    ]
    names = ["ANN", f"SNN T={config.t0}", f"pruned SNN T={config.stages[-1]}"]
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    ax.bar(names, np.array(values) / 1e3, color=["C1", "C0", "C2"])
    ax.set(ylabel="energy per inference (nJ)", title="energy proxy (45 nm)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_energy.png")
    return "snn_energy.png"


def _plot_mechanism(runs: list[SeedRun], twins: list[SeedRun], config: Any, out_dir: Path) -> str:
    """Left: widths kept by the claimed rule per layer, input coding direct vs spikes.
    Right: the pruned SNN's energy split into MACs (analog first-layer input) and ACs, next
    to the same-width ANN, for both codings."""
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure
    from netprism.spiking.pruning import ENERGY_PJ

    key = next(iter(runs[0].retrained))
    codings = (config.encoding, faithful_config(config).encoding)
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    for k, (coding, rs) in enumerate(zip(codings, (runs, twins))):
        widths = np.mean([r.retrained[key]["widths"] for r in rs], axis=0)
        layers = np.arange(len(widths))
        left.bar(layers + (k - 0.5) * 0.4, widths, 0.4, label=f"{coding} input")
        mac = np.mean([ENERGY_PJ["mac"] * r.energy_pruned["snn_mac"] for r in rs]) / 1e3
        ac = np.mean([ENERGY_PJ["ac"] * r.energy_pruned["snn_ac"] for r in rs]) / 1e3
        ann = np.mean([r.energy_pruned["ann_pj"] for r in rs]) / 1e3
        right.bar(2 * k, mac, 0.8, color="C3", label="SNN MACs" if k == 0 else None)
        right.bar(2 * k, ac, 0.8, bottom=mac, color="C0", label="SNN ACs" if k == 0 else None)
        right.bar(2 * k + 0.9, ann, 0.8, color="C1", label="same-width ANN" if k == 0 else None)
    for i, width in enumerate(config.hidden):
        left.hlines(width, i - 0.45, i + 0.45, color="gray", lw=0.8, ls="--")
    left.set_xticks(
        np.arange(len(config.hidden)), [f"layer {i + 1}" for i in range(len(config.hidden))]
    )
    left.set(ylabel="width kept", title=f"{key} widths (dashed: full width)")
    left.legend(fontsize=7)
    right.set_xticks([0.45, 2.45], [f"{c} input" for c in codings])
    right.set(ylabel="energy per inference (nJ)",
              title=f"pruned SNN at T={config.stages[-1]} vs ANN")  # fmt: skip
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_faithful_mechanism.png")
    return "snn_faithful_mechanism.png"
