"""Figures and saved records of the ``tofu`` experiment: accuracy against uplink bytes, the
proxies next to the true batch, the attacks' reconstructions, fidelity against N, the
``privacy_faithful`` mechanism against the local steps K, and ``tofu_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netprism.experiments.tofu.claims import (
    METHODS,
    RECON_ROWS,
    faithful_metrics,
    faithful_values,
    mean_or_nan,
)
from netprism.experiments.tofu.config import TOFUExperimentConfig
from netprism.experiments.tofu.records import SeedRuns
from netprism.io import atomic_write_text

LABELS = {"fedavg": "FedAvg", "tofu": "TOFU only", "hybrid": "TOFU hybrid"}


def draw(runs: list[SeedRuns], config: TOFUExperimentConfig, out_dir: Path) -> list[str]:
    """The figures and ``tofu_runs.json``; returns the figure file names."""
    figures = [
        _plot_bytes(runs, out_dir),
        _plot_proxies(runs[0], out_dir),
        _plot_recon(runs[0], out_dir),
        _plot_fidelity(runs, out_dir),
    ]
    if twins := [r for r in runs if r.privacy_faithful]:  # faithful_seeds
        figures.append(_plot_privacy_faithful(twins, config, out_dir))
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


def _plot_privacy_faithful(
    runs: list[SeedRuns], config: TOFUExperimentConfig, out_dir: Path
) -> str:
    """``privacy_faithful``'s mechanism against K, one colour per round (seed mean +- std):
    the proxies' best match to the true images, Inverting Gradients' PSNR on the real and the
    decoded update, their MSE ratio (the claim's quantity), and the encoder's cosine."""
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    rounds = sorted({r for r, _ in runs[0].privacy_faithful})
    steps = sorted({k for _, k in runs[0].privacy_faithful})

    def series(r: int, key: str) -> tuple[np.ndarray, np.ndarray]:
        v = np.array(
            [[faithful_values(run.privacy_faithful[(r, k)].quality)[key] for k in steps]
             for run in runs]
        )  # (seeds, len(steps))  # fmt: skip
        return v.mean(0), (v.std(0, ddof=1) if len(runs) > 1 else np.zeros(len(steps)))

    panels = (
        ("sent proxies vs true images", "best-match PSNR (dB)",
         (("proxy_best_match_psnr", "-", "each proxy"),
          ("proxy_to_true_psnr", ":", "each true image"))),
        ("Inverting Gradients", "best-match PSNR (dB)",
         (("ig_real_psnr", "-", "real update"), ("ig_tofu_psnr", "--", "decoded update"))),
        ("encoder and attacker fit", "cosine",
         (("encoder_cosine", "-", "decoded vs real"),
          ("one_step_cosine", ":", "real vs one step"))),
    )  # fmt: skip
    fig = Figure(figsize=(10.0, 7.0))
    axes = fig.subplots(2, 2).ravel()
    for ax, (title, ylabel, lines) in zip(axes, panels):
        for i, r in enumerate(rounds):
            for key, style, label in lines:
                mean, err = series(r, key)
                ax.errorbar(steps, mean, yerr=err, color=f"C{i}", ls=style, marker="o",
                            capsize=3, label=f"round {r}: {label}")  # fmt: skip
        ax.set(xlabel="local SGD steps K", ylabel=ylabel, title=title)
        _k_axis(ax, steps)
        ax.legend(fontsize=7)
    ax = axes[3]
    means: dict[str, float] = {}
    faithful_metrics(runs, means)  # the claim's ratio: of the seed means of the MSEs
    for i, r in enumerate(rounds):
        ratio = [means[f"faithful_r{r}_k{k}_ig_mse_ratio"] for k in steps]
        ax.plot(steps, ratio, color=f"C{i}", marker="o", label=f"round {r}")
    ax.axhline(config.min_mse_ratio, color="k", ls="--", lw=1, label="target")
    ax.axvline(config.privacy_faithful_k, color="grey", ls=":", lw=1, label="claim K")
    ax.set(xlabel="local SGD steps K", ylabel="IG MSE decoded / real",
           title="the claim's quantity")  # fmt: skip
    _k_axis(ax, steps)
    ax.legend(fontsize=7)
    fig.suptitle(
        f"privacy_faithful: K local steps of B={config.attack_batch} images ({len(runs)} seeds)"
    )
    fig.tight_layout()
    save_figure(fig, out_dir / "tofu_privacy_faithful_mechanism.png")
    return "tofu_privacy_faithful_mechanism.png"


def _k_axis(ax: Any, steps: list[int]) -> None:
    """A log2 axis ticked at the swept K."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(steps, labels=[str(k) for k in steps])
    ax.minorticks_off()


def save_runs(runs: list[SeedRuns], out_dir: Path) -> None:
    """Every round log, fidelity sweep and attack quality per seed."""
    data = {
        str(r.seed): {
            "rounds": {name: log.to_dict() for name, log in r.logs.items()},
            "fidelity": {str(n): v for n, v in r.fidelity.items()},
            "privacy": {str(b): p.quality for b, p in r.privacy.items()},
            "privacy_faithful": {
                f"r{rnd}_k{k}": p.quality for (rnd, k), p in r.privacy_faithful.items()
            },
            "n_params": r.n_params,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "tofu_runs.json", json.dumps(data, indent=1))
