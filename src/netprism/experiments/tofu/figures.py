"""Figures and saved records of the ``tofu`` experiment: accuracy against uplink bytes, the
proxies next to the true batch, the attacks' reconstructions, fidelity against N, and
``tofu_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from netprism.experiments.tofu.claims import METHODS, RECON_ROWS, mean_or_nan
from netprism.experiments.tofu.config import TOFUExperimentConfig
from netprism.experiments.tofu.records import SeedRuns
from netprism.io import atomic_write_text

LABELS = {"fedavg": "FedAvg", "tofu": "TOFU only", "hybrid": "TOFU hybrid"}


def draw(runs: list[SeedRuns], config: TOFUExperimentConfig, out_dir: Path) -> list[str]:
    """The four figures and ``tofu_runs.json``; returns the figure file names."""
    figures = [
        _plot_bytes(runs, out_dir),
        _plot_proxies(runs[0], out_dir),
        _plot_recon(runs[0], out_dir),
        _plot_fidelity(runs, out_dir),
    ]
    save_runs(runs, out_dir)
    return figures


def _image(t: torch.Tensor) -> np.ndarray:
    return (t.reshape(t.shape[-2], t.shape[-1]) if t.dim() >= 2 else t.reshape(1, -1)).numpy()


def _plot_bytes(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    for i, m in enumerate(METHODS):
        for j, r in enumerate(runs):
            mb = np.cumsum(r.logs[m].uplink_bytes) / 1e6
            ax.plot(
                mb,
                r.logs[m].accuracy,
                color=f"C{i}",
                alpha=1.0 if j == 0 else 0.35,
                label=LABELS[m] if j == 0 else None,
            )
    ax.set(xscale="log", xlabel="cumulative uplink (MB, all clients)", ylabel="test accuracy (%)")
    ax.set_title(f"accuracy vs bytes ({len(runs)} seeds; bold = seed {runs[0].seed})")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "tofu_accuracy_vs_bytes.png")
    return "tofu_accuracy_vs_bytes.png"


def _plot_proxies(run: SeedRuns, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    p = run.privacy[max(run.privacy)]
    cols = max(len(p.x), len(p.proxy_x))
    fig = Figure(figsize=(1.3 * cols, 3.0))
    axes = np.atleast_2d(fig.subplots(2, cols))
    for row, (title, imgs) in enumerate((("true", p.x), ("proxy", p.proxy_x))):
        for j, ax in enumerate(axes[row]):
            ax.axis("off")
            if j < len(imgs):
                ax.imshow(_image(imgs[j]), cmap="gray")
                ax.set_title(f"{title} {j}", fontsize=7)
    fig.suptitle(f"TOFU proxy inputs next to the client's true batch (seed {run.seed})")
    save_figure(fig, out_dir / "tofu_proxies.png")
    return "tofu_proxies.png"


def _plot_recon(run: SeedRuns, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    p = run.privacy[max(run.privacy)]
    rows = [("true", p.x)] + [(k, p.recon[k]) for k in RECON_ROWS if k in p.recon]
    fig = Figure(figsize=(1.4 * len(p.x) + 1.5, 1.3 * len(rows)))
    axes = np.atleast_2d(fig.subplots(len(rows), len(p.x)))
    for (name, imgs), row in zip(rows, axes):
        for j, ax in enumerate(row):
            ax.imshow(_image(imgs[j]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        psnr = p.quality.get(name, {}).get("psnr")
        row[0].set_ylabel(name if psnr is None else f"{name}\n{psnr:.1f} dB", fontsize=7)
    fig.suptitle(f"attacks on the real vs TOFU-decoded update (B={p.batch}, seed {run.seed})")
    save_figure(fig, out_dir / "tofu_reconstructions.png")
    return "tofu_reconstructions.png"


def _plot_fidelity(runs: list[SeedRuns], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    ns = sorted(runs[0].fidelity)
    vals = np.array([[mean_or_nan(r.fidelity[n]) for n in ns] for r in runs])  # (seeds, len(ns))
    fig = Figure(figsize=(4.5, 3.4))
    ax = fig.subplots()
    err = vals.std(axis=0, ddof=1) if len(runs) > 1 else None
    ax.errorbar(ns, vals.mean(0), yerr=err, marker="o", capsize=3)
    ax.set(xscale="log", xlabel="proxy samples N", ylabel="cos(decoded, real update)")
    ax.set_title("encoder fidelity vs N")
    fig.tight_layout()
    save_figure(fig, out_dir / "tofu_fidelity.png")
    return "tofu_fidelity.png"


def save_runs(runs: list[SeedRuns], out_dir: Path) -> None:
    """Every round log, fidelity sweep and attack quality per seed."""
    data = {
        str(r.seed): {
            "rounds": {name: log.to_dict() for name, log in r.logs.items()},
            "fidelity": {str(n): v for n, v in r.fidelity.items()},
            "privacy": {str(b): p.quality for b, p in r.privacy.items()},
            "n_params": r.n_params,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "tofu_runs.json", json.dumps(data, indent=1))
