"""Figure of the ``pca_design`` experiment: significant dimensions per layer."""

from __future__ import annotations

from pathlib import Path

from netprism.experiments.pca_design.config import PCADesignConfig
from netprism.experiments.pca_design.records import SeedRun


def draw(runs: list[SeedRun], config: PCADesignConfig, out_dir: Path) -> list[str]:
    """The first seed's widths and significant dimensions; returns the figure file names."""
    return [_plot_dims(runs[0], config, out_dir)]


def _plot_dims(run0: SeedRun, config: PCADesignConfig, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    reports = [run0.designs[thr].report for thr in config.thresholds]
    layers = reports[0].layers
    xs = list(range(len(layers)))
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    ax.bar(xs, [ly.width for ly in layers], color="#d0d7de", label="original width")
    for rep, marker in zip(reports, "os^v"):
        ys = [ly.significant for ly in rep.layers]
        ax.plot(xs, ys, marker=marker, label=f"significant dims @ {rep.threshold:.1%}")
        drop = [i for i, ly in enumerate(rep.layers) if not ly.kept]
        ax.scatter(drop, [ys[i] for i in drop], marker="x", s=90, color="#cf222e", zorder=3)
    for i in range(1, len(layers)):
        if layers[i].stage != layers[i - 1].stage:
            ax.axvline(i - 0.5, color="#8c959f", ls=":", lw=1)
    ax.scatter([], [], marker="x", color="#cf222e", label="dropped by depth rule")
    ax.set_xticks(xs, [ly.name.split(".")[-1] for ly in layers], rotation=45)
    ax.set(
        ylabel="channels",
        title="PCA design: significant dimensions per layer (seed "
        f"{config.seeds[0]}; dotted lines = pools)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "significant_dims.png")
    return "significant_dims.png"
