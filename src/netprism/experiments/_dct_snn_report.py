"""Claims, metrics and figures of the ``dct_snn`` experiment (see :mod:`.dct_snn`).

Accuracies are reported in percentage points, mean +- std over seeds.  Four claims
(``dct_reconstructs``, ``dct_beats_rate``, ``snn_near_ann``, ``latency_knob``), the coding
statistics that explain rate vs DCT per dataset, and four figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netprism.core.metrics import spearman
from netprism.experiments.base import Claim, mean_std
from netprism.spiking import (
    DCTEncoder,
    block_tile,
    dct_basis_images,
    frequency_images,
)

STAGES = ("conv", "ft")
KINDS = ("dct", "rate")


@dataclass
class DatasetRuns:
    """Accuracies (fractions) of one dataset over encoders, T, stages and seeds."""

    dataset: str
    timesteps: tuple[int, ...]
    test_x: torch.Tensor
    ann: list[float] = field(default_factory=list)
    acc: dict[str, list[float]] = field(default_factory=dict)  # "dct/16/ft" -> per seed
    thresholds: dict[str, list[list[float]]] = field(default_factory=dict)  # "dct/16"
    knob: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> K -> acc
    example_snn: Any = None

    def add(
        self, kind: str, t: int, seed: int, conv: float, ft: float, thresholds: list[float]
    ) -> None:
        for stage, value in zip(STAGES, (conv, ft)):
            self.acc.setdefault(f"{kind}/{t}/{stage}", []).append(value)
        self.thresholds.setdefault(f"{kind}/{t}", []).append(thresholds)

    def points(self, kind: str, t: int, stage: str = "ft") -> tuple[float, float]:
        return mean_std([100.0 * v for v in self.acc[f"{kind}/{t}/{stage}"]])

    def to_dict(self) -> dict[str, Any]:
        return {
            "timesteps": list(self.timesteps),
            "ann": self.ann,
            "acc": self.acc,
            "thresholds": self.thresholds,
            "knob": {str(s): {str(k): v for k, v in d.items()} for s, d in self.knob.items()},
        }


def reconstruction_error(x: torch.Tensor, block: int) -> float:
    """Max |sum of one cycle of frequency images - block-tiled image| (float32)."""
    frames = frequency_images(x.float(), block)  # (b*b, B, C, H', W')
    return float((frames.sum(0) - block_tile(x.float(), block)).abs().max())


def _pm(stat: tuple[float, float]) -> str:
    return f"{stat[0]:.1f} +- {stat[1]:.1f}"


def claims_and_metrics(
    runs: list[DatasetRuns],
    recon: dict[str, float],
    stats: dict[str, dict[str, float]],
    config: Any,
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    by_name = {r.dataset: r for r in runs}
    main = by_name[config.main_dataset]
    metrics: dict[str, float] = {"n_seeds": float(len(config.seeds))}
    baselines: dict[str, dict[str, float]] = {}
    for r in runs:
        metrics[f"{r.dataset}_ann"], metrics[f"{r.dataset}_ann_std"] = mean_std(
            [100 * a for a in r.ann]
        )
        metrics[f"{r.dataset}_dct_reconstruction_error"] = recon[r.dataset]
        for key, value in stats[r.dataset].items():
            metrics[f"{r.dataset}_{key}"] = value
        for kind in KINDS:
            for t in r.timesteps:
                for stage in STAGES:
                    m, s = r.points(kind, t, stage)
                    metrics[f"{r.dataset}_{kind}_T{t}_{stage}"] = m
                    metrics[f"{r.dataset}_{kind}_T{t}_{stage}_std"] = s
        baselines[f"rate_{r.dataset}"] = {f"T{t}": r.points("rate", t)[0] for t in r.timesteps}
        baselines[f"ann_{r.dataset}"] = {"acc": metrics[f"{r.dataset}_ann"]}
    knobs = {r.dataset: _knob_curve(r, config) for r in runs if r.knob}
    for name, knob in knobs.items():
        for k, v in knob.items():
            metrics[f"{name}_knob_K{k}"] = v
    claims = [
        Claim(
            id="dct_reconstructs",
            text="one full cycle of frequency images sums to the block-tiled image (float32, "
            "whole test sets: "
            + ", ".join(f"{d} {e:.1e}" for d, e in recon.items())
            + "); measured = the largest absolute error",
            measured=max(recon.values()),
            target=1e-5,
            op="<=",
        ),
        _claim_beats_rate(runs, main, stats, config),
        _claim_near_ann(runs, main, config),
        _claim_knob(by_name, knobs, config),
    ]
    return claims, metrics, baselines


def _gaps(r: DatasetRuns) -> dict[int, float]:
    """Mean over seeds of DCT - rate (points, after fine-tuning) per T (paired by seed)."""
    out = {}
    for t in r.timesteps:
        d, q = r.acc[f"dct/{t}/ft"], r.acc[f"rate/{t}/ft"]
        out[t] = float(np.mean([100 * (a - b) for a, b in zip(d, q)]))
    return out


def _claim_beats_rate(
    runs: list[DatasetRuns], main: DatasetRuns, stats: dict[str, dict[str, float]], config: Any
) -> Claim:
    parts = []
    for r in runs:
        per_t = ", ".join(
            f"T={t}: DCT {_pm(r.points('dct', t))} vs rate {_pm(r.points('rate', t))}"
            for t in r.timesteps
        )
        s = stats[r.dataset]
        parts.append(
            f"{r.dataset} ({per_t}; pixels near 0/1 {100 * s['extreme_fraction']:.0f} %, "
            f"coding error / signal std at T={min(config.timesteps)}: rate "
            f"{s['rate_error_over_signal']:.2f}, DCT {s['dct_error_over_signal']:.2f})"
        )
    gaps = _gaps(main)
    worst = min(gaps, key=lambda t: gaps[t])
    return Claim(
        id="dct_beats_rate",
        text=f"on continuous-tone {main.dataset}, at equal T in {list(main.timesteps)} the "
        f"DCT-coded SNN is more accurate than rate coding after fine-tuning "
        f"({len(config.seeds)} seeds): " + "; ".join(parts) + f". measured = the smallest "
        f"mean DCT - rate gap on {main.dataset} (T={worst}), in points",
        measured=gaps[worst],
        target=0.0,
        op=">",
        baseline=main.points("rate", worst)[0],
        baseline_name=f"rate coding, T={worst}",
    )


def _claim_near_ann(runs: list[DatasetRuns], main: DatasetRuns, config: Any) -> Claim:
    def gap(r: DatasetRuns) -> float:
        t = max(r.timesteps)
        return float(np.mean(r.ann)) * 100 - r.points("dct", t)[0]

    t = max(main.timesteps)
    others = ", ".join(f"{r.dataset} {gap(r):.1f}" for r in runs if r is not main)
    return Claim(
        id="snn_near_ann",
        text=f"the DCT-SNN at T={t} is within {config.near_ann_points:g} points of its ANN on "
        f"{main.dataset}: ANN {_pm(mean_std([100 * a for a in main.ann]))}, DCT-SNN "
        f"{_pm(main.points('dct', t))} after fine-tuning ({_pm(main.points('dct', t, 'conv'))} "
        f"right after conversion); gap elsewhere: {others or 'none'}; measured = ANN - SNN",
        measured=gap(main),
        target=config.near_ann_points,
        op="<=",
        baseline=float(np.mean(main.ann)) * 100,
        baseline_name="ANN",
    )


def _knob_curve(main: DatasetRuns, config: Any) -> dict[int, float]:
    return {k: float(np.mean([100 * d[k] for d in main.knob.values()])) for k in config.keep_bases}


def _claim_knob(
    by_name: dict[str, DatasetRuns], knobs: dict[str, dict[int, float]], config: Any
) -> Claim:
    parts, rhos = [], {}
    for name, knob in knobs.items():
        r = by_name[name]
        cycles = max(r.timesteps) // (config.block * config.block)
        rho = spearman(list(knob), list(knob.values())) if len(knob) > 1 else float("nan")
        rhos[name] = round(rho, 9)  # ranks of 4 points give 0.8 exactly, not 0.7999999999999998
        curve = ", ".join(f"K={k} (T={k * cycles}) {v:.1f}" for k, v in knob.items())
        parts.append(f"{name}: {curve} (Spearman {rhos[name]:.2f})")
    worst = min(rhos, key=lambda n: rhos[n]) if rhos else ""
    return Claim(
        id="latency_knob",
        text="keeping the first K zig-zag bases of each cycle of the largest-T DCT-SNN, "
        "accuracy falls as K (and T) falls: " + "; ".join(parts) + "; measured = the smallest "
        f"Spearman of (K, accuracy) over datasets ({worst})",
        measured=rhos[worst] if rhos else float("nan"),
        target=config.min_knob_spearman,
        op=">=",
    )


def plot_all(runs: list[DatasetRuns], config: Any, out_dir: Path) -> list[str]:
    main = next(r for r in runs if r.dataset == config.main_dataset)
    figures = [_plot_encoding(main, config, out_dir), _plot_accuracy(runs, out_dir)]
    if main.example_snn is not None:
        figures.append(_plot_raster(main, config, out_dir))
    figures.append(_plot_knob([r for r in runs if r.knob], config, out_dir))
    return figures


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
