"""Figures and saved records of the ``trend`` experiment: mean TM heatmap, attack success
against eps, robust accuracy of candidate ensembles, ensemble-attack success with a scaled
member, what domination rests on (gradient-sign agreement against transferability; one
member's attack alone against the ensemble), and ``trend_runs.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from netprism.experiments.trend.config import TRENDExperimentConfig
from netprism.experiments.trend.records import SeedRun
from netprism.io import atomic_write_text
from netprism.robustness.ensemble import MODE_NAMES, MODES


def draw(runs: list[SeedRun], config: TRENDExperimentConfig, out_dir: Path) -> list[str]:
    """The six figures and ``trend_runs.json``; returns the figure file names."""
    figures = [
        _plot_heatmap(runs, config, out_dir),
        _plot_curves(runs, config, out_dir),
        _plot_candidates(runs, config, out_dir),
        _plot_domination(runs, config, out_dir),
        _plot_domination_mechanism(runs, out_dir),
    ]
    if twins := [r for r in runs if r.design_faithful]:  # faithful_seeds
        figures.append(_plot_design_mechanism(twins, config, out_dir))
    atomic_write_text(
        out_dir / "trend_runs.json", json.dumps([r.to_dict() for r in runs], indent=1)
    )
    return figures


def _plot_heatmap(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    names = runs[0].names
    tm = np.nanmean(np.array([r.tm for r in runs], dtype=float), axis=0)  # (M, M)
    fig = Figure(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.55 * len(names)))
    ax = fig.subplots()
    im = ax.imshow(tm, vmin=0, vmax=1, cmap="magma")
    for (i, j), v in np.ndenumerate(tm):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="black" if v > 0.6 else "white",
        )
    ax.set_xticks(range(len(names)), names, rotation=45)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="target", ylabel="source")
    ax.set_title(f"TM at eps={config.tm_eps:g} (mean of {len(runs)} seeds)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_tm_heatmap.png")
    return "trend_tm_heatmap.png"


def _plot_curves(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for name in runs[0].curves:
        vals = 100 * np.array([r.curves[name] for r in runs])  # (seeds, E)
        label = name
        for mode, short in MODE_NAMES.items():
            label = label.replace(f" {mode}", f", {short}")
        ls = "--" if name.startswith("TREND") else "-"
        ax.plot(config.eps, vals.mean(0), ls, marker="o", label=label)
    ax.set(xlabel="eps (L-inf, [0, 1] pixels)", ylabel="attack success (%)", ylim=(0, 102))
    ax.set_title("single fp model (solid) and TREND ensemble (dashed)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_attack_success.png")
    return "trend_attack_success.png"


def _plot_candidates(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    rows: dict[str, list[float]] = {}
    for label in ("TREND", "fp+q1+q2"):
        rows[label] = [
            100 * float(np.mean([r.candidates[label].robust[m] for r in runs])) for m in MODES
        ]
    rows["random (mean)"] = [
        100
        * float(
            np.mean(
                [
                    c.robust[m]
                    for r in runs
                    for k, c in r.candidates.items()
                    if k.startswith("random")
                ]
            )
        )
        for m in MODES
    ]
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    x = np.arange(len(rows) + len(runs[0].names))
    width = 0.25
    for i, mode in enumerate(MODES):
        vals = [v[i] for v in rows.values()]
        ax.bar(x[: len(rows)] + (i - 1) * width, vals, width, label=MODE_NAMES[mode])
    singles = [100 * float(np.mean([r.single_robust[n] for r in runs])) for n in runs[0].names]
    ax.bar(x[len(rows) :], singles, 0.6, color="grey", label="single (PGD)")
    ax.set_xticks(x, [*rows, *runs[0].names], rotation=45)
    ax.set(ylabel=f"robust accuracy at eps={config.attack_eps:g} (%)", ylim=(0, 100))
    ax.set_title(f"candidate ensembles vs single models ({len(runs)} seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_candidate_ensembles.png")
    return "trend_candidate_ensembles.png"


def _plot_domination(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    members = runs[0].domination["members"]
    labels = ["none", *[f"{m} x{config.domination_scale:g}" for m in members]]
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    x = np.arange(len(labels))
    for i, mode in enumerate(MODES):
        vals = 100 * np.array([r.domination["success"][mode] for r in runs]).mean(0)
        ax.bar(x + (i - 1) * 0.25, vals, 0.25, label=MODE_NAMES[mode])
    ax.set_xticks(x, labels)
    ax.set(xlabel="scaled member loss", ylabel="ensemble attack success (%)", ylim=(0, 100))
    ax.set_title(f"gradient domination on {{{', '.join(members)}}}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_gradient_domination.png")
    return "trend_gradient_domination.png"


def _plot_domination_mechanism(runs: list[SeedRun], out_dir: Path) -> str:
    """Left: per ordered pair of pool members, the share of input-gradient signs they agree on
    against TM(pair). Right: per attacked ensemble, D-AG unscaled and with one member
    dominating, next to PGD on one member alone (success against the ensemble)."""
    from matplotlib.figure import Figure

    from netprism.experiments.trend.claims import mutual_tm
    from netprism.report.figures import save_figure

    names = runs[0].names
    pairs = [(i, j) for i in range(len(names)) for j in range(len(names)) if i != j]
    tm = [np.mean([r.tm[i][j] for r in runs]) for i, j in pairs]
    agree = [100 * np.mean([r.sign_agreement[i][j] for r in runs]) for i, j in pairs]
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    left.scatter(tm, agree, s=14)
    left.set(xlabel="TM(source -> target)", ylabel="input-gradient signs shared (%)")
    left.set_title(f"pool pairs ({len(runs)} seeds)")
    left.grid(alpha=0.3)
    bars: dict[str, list[float]] = {
        "D-AG unscaled": [],
        "D-AG one member x scale": [],
        "PGD on one member": [],
    }
    labels = []
    for key, label in (("domination", "{fp, q1, q2}"), ("domination_faithful", "TREND")):
        with_key = [(r, getattr(r, key)) for r in runs if getattr(r, key)]  # twin: faithful_seeds
        if not with_key:
            continue
        ds = [d for _, d in with_key]
        tm_mean = np.mean([mutual_tm(r, d["members"]) for r, d in with_key])
        labels.append(f"{label}\nmutual TM {tm_mean:.2f}")
        bars["D-AG unscaled"].append(100 * np.mean([d["success"]["avg"][0] for d in ds]))
        bars["D-AG one member x scale"].append(
            100 * np.mean([v for d in ds for v in d["success"]["avg"][1:]])
        )
        bars["PGD on one member"].append(100 * np.mean([v for d in ds for v in d["solo_success"]]))
    x = np.arange(len(labels))
    for k, (name, vals) in enumerate(bars.items()):
        right.bar(x + (k - 1) * 0.25, vals, 0.25, label=name)
    right.set_xticks(x, labels)
    right.set(ylabel="success on ensemble-correct samples (%)", ylim=(0, 100))
    right.set_title("a dominated D-AG is one member's attack")
    right.legend(fontsize=7)
    right.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_domination_mechanism.png")
    return "trend_domination_mechanism.png"


def _plot_design_mechanism(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    """Every ensemble of the pool (per seed): robust accuracy under the strongest ensemble
    attack against its mean mutual TM at the attack's eps; TREND's pick and the best single
    member marked."""
    from matplotlib.figure import Figure

    from netprism.experiments.trend.claims import ensemble_points
    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for k, r in enumerate(runs):
        d = r.design_faithful
        points = ensemble_points(r)
        xs, ys = zip(*points.values())
        ax.scatter(xs, ys, s=10, color=f"C{k}", alpha=0.6, label=f"seed {r.seed}")
        pick = points["+".join(d["members"])]
        ax.scatter([pick[0]], [pick[1]], s=90, marker="*", color=f"C{k}", edgecolor="black")
        ax.axhline(100 * max(d["single_robust"].values()), color=f"C{k}", lw=0.8, ls="--")
    ax.set(xlabel=f"mean mutual TM at eps={config.attack_eps:g}",
           ylabel="robust accuracy, strongest ensemble attack (%)")  # fmt: skip
    ax.set_title("every ensemble of the pool (star: TREND; dashed: best member)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_design_mechanism.png")
    return "trend_design_mechanism.png"
