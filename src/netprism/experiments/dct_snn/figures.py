"""Figures and saved records of the ``dct_snn`` experiment: the encoding, accuracy vs T, a
spike raster, the latency knob and the faithful twin's mechanism, plus ``dct_snn_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netprism.experiments.dct_snn.config import DCTSNNConfig
from netprism.experiments.dct_snn.records import KINDS, STAGES, DatasetRuns, Measured
from netprism.io import atomic_write_text
from netprism.spiking import DCTEncoder, dct_basis_images, frequency_images


def draw(measured: Measured, config: DCTSNNConfig, out_dir: Path) -> list[str]:
    """The figures and ``dct_snn_runs.json``; returns the figure file names."""
    figures = plot_all(measured.runs, config, out_dir)
    if measured.faithful is not None:
        figures.append(_plot_mechanism(measured, config, out_dir))
    save_runs(measured.runs + ([measured.faithful] if measured.faithful else []), out_dir)
    return figures


def plot_all(runs: list[DatasetRuns], config: Any, out_dir: Path) -> list[str]:
    """Write the figures into ``out_dir`` (the raster only with an example SNN)."""
    main = next(r for r in runs if r.dataset == config.main_dataset)
    figures = [_plot_encoding(main, config, out_dir), _plot_accuracy(runs, out_dir)]
    if main.example_snn is not None:
        figures.append(_plot_raster(main, config, out_dir))
    figures.append(_plot_knob([r for r in runs if r.knob], config, out_dir))
    return figures


def save_runs(runs: list[DatasetRuns], out_dir: Path) -> None:
    """Every dataset's accuracies, thresholds and knob sweep, keyed by dataset
    (``faithful-<dataset>`` for the faithful variant)."""
    data = {f"{'faithful-' if r.faithful else ''}{r.dataset}": r.to_dict() for r in runs}
    atomic_write_text(out_dir / "dct_snn_runs.json", json.dumps(data, indent=1))


def _plot_encoding(main: DatasetRuns, config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    b = config.block
    bases = dct_basis_images(b).numpy()  # (b*b, b, b)
    image = main.test_x[:1].float()
    frames = frequency_images(image, b)[:, 0, 0].numpy()  # (b*b, H, W)
    spikes = DCTEncoder(block=b, cycles=1)(image)[:, 0, 0].numpy()  # (b*b, H, W)
    fig = Figure(figsize=(12, 5.2))
    grid = fig.add_gridspec(3, 8)
    for k in range(min(16, len(bases))):
        ax = fig.add_subplot(grid[k // 8, k % 8])
        lim = float(abs(bases).max())
        ax.imshow(bases[k], cmap="gray", vmin=-lim, vmax=lim)
        ax.set_axis_off()
        ax.set_title(f"basis {k}", fontsize=7)
    for j, t in enumerate((1, 2, 4, 8)):
        ax = fig.add_subplot(grid[2, j])
        ax.imshow(frames[:t].sum(0), cmap="gray")
        ax.set_axis_off()
        ax.set_title(f"sum of first {t} frames", fontsize=7)
    ax = fig.add_subplot(grid[2, 4])
    ax.imshow(frames.sum(0), cmap="gray")
    ax.set_axis_off()
    ax.set_title("all 16 = image", fontsize=7)
    for j, t in enumerate((0, 1, 5)):
        ax = fig.add_subplot(grid[2, 5 + j])
        ax.imshow(spikes[t], cmap="bwr", vmin=-1, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"spikes at t={t}", fontsize=7)
    fig.suptitle(f"DCT bases (zig-zag) and one {main.dataset} test image encoded over time")
    save_figure(fig, out_dir / "dct_encoding.png")
    return "dct_encoding.png"


def _plot_accuracy(runs: list[DatasetRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(4.2 * len(runs), 3.4))
    for ax, r in zip(np.atleast_1d(fig.subplots(1, len(runs))), runs):
        ts = list(r.timesteps)
        for kind, color in zip(KINDS, ("C0", "C1")):
            for stage, style in zip(STAGES, ("--", "-")):
                stats = [r.points(kind, t, stage) for t in ts]
                ax.errorbar(
                    ts,
                    [m for m, _ in stats],
                    yerr=[0.0 if s != s else s for _, s in stats],
                    color=color,
                    ls=style,
                    marker="o",
                    capsize=3,
                    label=f"{kind} {'fine-tuned' if stage == 'ft' else 'converted'}",
                )
        ax.axhline(100 * float(np.mean(r.ann)), color="black", lw=0.8, label="ANN")
        ax.set(title=r.dataset, xlabel="time steps T", ylabel="test accuracy (%)", xticks=ts)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "accuracy_vs_T.png")
    return "accuracy_vs_T.png"


@torch.no_grad()
def _plot_raster(main: DatasetRuns, config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    snn = main.example_snn.eval()
    t = max(main.timesteps)
    x_seq = DCTEncoder(block=config.block, cycles=t // config.block**2)(main.test_x[:64].float())
    _, records = snn.run(x_seq)
    fig = Figure(figsize=(4.2 * len(records), 3.4))
    for i, (ax, rec) in enumerate(zip(np.atleast_1d(fig.subplots(1, len(records))), records)):
        spikes = rec.spikes[:, 0].flatten(1)[:, :64].numpy()  # (T, 64 units) of image 0
        tt, uu = np.nonzero(spikes)
        ax.scatter(tt, uu, s=3, marker="|", color="black")
        rate = float(rec.spikes.mean())
        ax.set(
            xlabel="time step",
            ylabel="unit",
            title=f"hidden layer {i + 1}: spikes of 64 units (mean rate {rate:.3f})",
            xlim=(-1, t),
        )
    fig.tight_layout()
    save_figure(fig, out_dir / "spike_raster.png")
    return "spike_raster.png"


def _plot_knob(runs: list[DatasetRuns], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    ks = list(config.keep_bases)
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for r in runs:
        cycles = max(r.timesteps) // config.block**2
        acc = np.array([[100 * d[k] for k in ks] for d in r.knob.values()])  # (seeds, K)
        err = acc.std(axis=0, ddof=1) if len(acc) > 1 else None
        label = f"{r.dataset} (T = {cycles} K)"
        ax.errorbar(ks, acc.mean(0), yerr=err, marker="o", capsize=3, label=label)
    ax.set(xlabel="kept bases K", ylabel="test accuracy (%)", title="latency knob", xticks=ks)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "latency_knob.png")
    return "latency_knob.png"


def _plot_mechanism(measured: Measured, config: Any, out_dir: Path) -> str:
    """The faithful twin's mechanism on the main dataset. Left: coding error / signal std
    against T for both codes. Middle: accuracy against T right after conversion and after
    fine-tuning. Right: the paired DCT - rate gap of every seed after fine-tuning (points),
    their mean, and the reproduced run's mean gap."""
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    twin = measured.faithful
    assert twin is not None
    ts = list(twin.timesteps)
    coding = measured.coding[twin.dataset]
    fig = Figure(figsize=(13, 3.6))
    left, middle, right = fig.subplots(1, 3)
    for kind, color in zip(KINDS, ("C0", "C1")):
        left.plot(ts, [coding[t][f"{kind}_error_over_signal"] for t in ts], "o-", color=color,
                  label=kind)  # fmt: skip
        for stage, style in zip(STAGES, ("--", "-")):
            means = [twin.points(kind, t, stage)[0] for t in ts]
            label = f"{kind} {'fine-tuned' if stage == 'ft' else 'converted'}"
            middle.plot(ts, means, marker="o", ls=style, color=color, label=label)
    middle.axhline(100 * float(np.mean(twin.ann)), color="black", lw=0.8, label="ANN")
    for t in ts:
        gaps = twin.paired_gaps(t)
        right.scatter([t] * len(gaps), gaps, color="C2", s=18, zorder=3)
    right.plot(ts, [np.mean(twin.paired_gaps(t)) for t in ts], "s-", color="C2",
               label="faithful: seeds and mean")  # fmt: skip
    main = next(r for r in measured.runs if r.dataset == twin.dataset)
    right.plot(main.timesteps, [np.mean(main.paired_gaps(t)) for t in main.timesteps], "x:",
               color="gray", label="reproduced run: mean")  # fmt: skip
    right.axhline(0.0, color="black", lw=0.8)
    left.set(xlabel="time steps T", ylabel="mean |decoded - image| / pixel std",
             title="coding error / signal std")  # fmt: skip
    middle.set(
        xlabel="time steps T", ylabel="test accuracy (%)", title=f"{twin.dataset} (faithful)"
    )
    right.set(xlabel="time steps T", ylabel="DCT - rate (points)",
              title="paired gap after fine-tuning")  # fmt: skip
    for ax in (left, middle, right):
        ax.set_xticks(ts)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "dct_faithful_mechanism.png")
    return "dct_faithful_mechanism.png"
