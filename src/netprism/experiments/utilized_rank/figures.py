"""Figures of the ``utilized_rank`` experiment: per-layer utilization by width, and accuracy
against parameter fraction for the three methods."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from netprism.compression.utilized_rank import METHODS
from netprism.experiments.utilized_rank.claims import rows_at
from netprism.experiments.utilized_rank.config import UtilizedRankConfig
from netprism.experiments.utilized_rank.records import RankStudy


def draw(records: RankStudy, config: UtilizedRankConfig, out_dir: Path) -> list[str]:
    """The two figures; returns their file names."""
    return _figures(records.widths, records.rows, records.refs, out_dir)


def _figures(
    study: dict[int, Any],
    rows: list[dict[str, Any]],
    refs: dict[int, dict[str, float]],
    out_dir: Path,
) -> list[str]:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    names = [la.name for la in study[next(iter(study))]["report"].layers]
    step = 0.8 / len(study)
    for i, (w, st) in enumerate(study.items()):
        u = [la.utilization for la in st["report"].layers]
        ax.bar(np.arange(len(names)) + i * step, u, step, label=f"w={w} (MLU {st['mlu']:.2f})")
    ax.set_xticks(np.arange(len(names)) + 0.4 - step / 2, names)
    ax.set(ylabel="utilization r / min(d_in, d_out)", title="per-layer utilization")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "utilization_bars.png")

    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2, sharey=True)
    taus = sorted({r["threshold"] for r in rows})
    ref = 100 * statistics.fmean(r["original"] for r in refs.values())
    for ax, key in zip(axes, ("acc_before", "acc_after")):
        for method in METHODS:
            pts = [
                (
                    statistics.fmean(r["param_fraction"] for r in rows_at(rows, t, method)),
                    100 * statistics.fmean(r[key] for r in rows_at(rows, t, method)),
                )
                for t in taus
            ]
            ax.plot(*zip(*pts), marker="o", label=method)  # fmt: skip
        ax.axhline(ref, color="k", ls="--", lw=1, label="original")
        ax.set(xscale="log", xlabel="parameter fraction", title=key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "accuracy_vs_params.png")
    return ["utilization_bars.png", "accuracy_vs_params.png"]
