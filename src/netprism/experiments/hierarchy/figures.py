"""Figures and saved records of the ``hierarchy`` experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from netprism.experiments.hierarchy.claims import LABELS, paired_points, stat
from netprism.experiments.hierarchy.config import HierarchyExperimentConfig
from netprism.experiments.hierarchy.records import FaithfulRecord, HierarchyRecords, SeedRun
from netprism.experiments.hierarchy.run import label_tree
from netprism.io import atomic_write_text
from netprism.robustness.hierarchy import LabelTree


def draw(records: HierarchyRecords, config: HierarchyExperimentConfig, out_dir: Path) -> list[str]:
    """The figures, ``hierarchy_runs.json`` and ``hierarchy_faithful_runs.json`` (when the
    twin ran); returns the figure file names."""
    runs = records.runs
    figures = [_plot_tree(runs, label_tree(config), out_dir), _plot_bars(runs, out_dir)]
    save_runs(runs, out_dir)
    if records.faithful is not None:
        figures.append(_plot_mechanism(records.faithful, config, out_dir))
        save_faithful(records.faithful, out_dir)
    return figures


def _layout(tree: LabelTree) -> dict[str, tuple[float, float]]:
    """Leaves evenly spaced on the bottom row; a parent above the mean of its children."""
    pos = {leaf: (float(i), -float(tree.node_depth(leaf))) for i, leaf in enumerate(tree.leaves)}
    for node in reversed(tree.nodes):
        kids = tree.children(node)
        if kids:
            pos[node] = (float(np.mean([pos[k][0] for k in kids])), -float(tree.node_depth(node)))
    return pos


def _plot_tree(runs: list[SeedRun], tree: LabelTree, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    shown = ["flat", "sequential"]
    pos = _layout(tree)
    fig = Figure(figsize=(max(8.0, 0.6 * len(tree.leaves)), 3.6 * len(shown)))
    axes = np.atleast_1d(fig.subplots(len(shown), 1))
    totals = {
        m: {
            e: sum(r.methods[m].unseen_edges[e] for r in runs)
            for e in runs[0].methods[m].unseen_edges
        }
        for m in shown
    }
    top = max([1, *(n for t in totals.values() for n in t.values())])
    for ax, m in zip(axes, shown):
        for edge, n in totals[m].items():
            a, b = edge.split(">")
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.plot([x0, x1], [y0, y1], color="tab:red" if n else "0.7", lw=0.8 + 5.0 * n / top)
            ax.text(
                (x0 + x1) / 2,
                (y0 + y1) / 2,
                str(n),
                fontsize=7,
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"},
            )
        for node, (x, y) in pos.items():
            ax.plot(x, y, "o", color="black", ms=3)
            if not tree.children(node):
                ax.text(x, y - 0.15, node, fontsize=6, rotation=90, ha="center", va="top")
        ax.set_title(
            f"{LABELS[m]}: unseen mistakes crossing each edge (sum over {len(runs)} seeds); "
            f"distance {np.mean([r.methods[m].unseen_dist for r in runs]):.3f}"
        )
        ax.set_ylim(-tree.depth - 1.2, 0.3)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out_dir / "hierarchy_tree_mistakes.png")
    return "hierarchy_tree_mistakes.png"


def _plot_bars(runs: list[SeedRun], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    methods = list(runs[0].methods)
    fig = Figure(figsize=(9, 3.4))
    ax_acc, ax_dist = fig.subplots(1, 2)
    x = np.arange(len(methods))
    for i, part in enumerate(("seen", "unseen")):
        off = x + (i - 0.5) * 0.38
        acc = [stat(runs, m, f"{part}_acc") for m in methods]
        dist = [stat(runs, m, f"{part}_dist") for m in methods]
        ax_acc.bar(off, [a for a, _ in acc], 0.38, yerr=[s for _, s in acc], capsize=3, label=part)
        ax_dist.bar(
            off, [d for d, _ in dist], 0.38, yerr=[s for _, s in dist], capsize=3, label=part
        )
    for ax, name in ((ax_acc, "accuracy (%)"), (ax_dist, "mean graphical distance")):
        ax.set_xticks(x, [LABELS[m].replace(" (", "\n(") for m in methods], fontsize=7)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3, axis="y")
        ax.legend()
    ax_acc.set(ylim=(0, 100), title=f"finest-head accuracy ({len(runs)} seeds)")
    ax_dist.set_title("catastrophic coefficient (lower is better)")
    fig.tight_layout()
    save_figure(fig, out_dir / "hierarchy_accuracy.png")
    return "hierarchy_accuracy.png"


def save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every seed's per-method numbers and unseen edge counts."""
    data = {str(r.seed): {m: vars(v) for m, v in r.methods.items()} for r in runs}
    atomic_write_text(out_dir / "hierarchy_runs.json", json.dumps(data, indent=1))


def save_faithful(record: FaithfulRecord, out_dir: Path) -> None:
    """The faithful twin's calibration (flat models), its outcome s* and its grid, keyed by
    grid value and seed."""

    def table(cells: dict[float, list[SeedRun]]) -> dict[str, Any]:
        return {
            f"{v:g}": {str(r.seed): {m: vars(x) for m, x in r.methods.items()} for r in rs}
            for v, rs in sorted(cells.items())
        }

    data = {
        "chosen_subpop_scale": record.chosen,
        "calibration": table(record.calibration),
        "grid": table(record.grid),
    }
    atomic_write_text(out_dir / "hierarchy_faithful_runs.json", json.dumps(data, indent=1))


def _plot_mechanism(
    record: FaithfulRecord, config: HierarchyExperimentConfig, out_dir: Path
) -> str:
    """Left: per (grid value, claim seed), the paired unseen gain against the flat model's
    edges per unseen mistake (s* ringed; dashed: the calibration bound).  Right: unseen
    accuracy of the finest head's prediction read at each level, flat (solid) and sequential
    (dashed), mean over the claim seeds, against the subpopulation offset."""
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    grid = sorted(record.grid)
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    colours = {v: f"C{i % 10}" for i, v in enumerate(grid)}
    for scale, edges, gain in paired_points(record):
        chosen = scale == record.chosen
        left.scatter(edges, gain, color=colours[scale], s=40 if chosen else 22,
                     edgecolors="black" if chosen else "none", zorder=3)  # fmt: skip
    for v in grid:
        left.scatter(
            [],
            [],
            color=colours[v],
            label=f"offset {v:g}" + (" (s*)" if v == record.chosen else ""),
        )
    left.axhline(0.0, color="0.4", lw=0.8)
    left.axvline(config.faithful_min_edges, color="0.4", lw=0.8, ls="--",
                 label=f"calibration bound ({config.faithful_min_edges:g} edges)")  # fmt: skip
    n_seeds = len(record.grid[grid[0]])
    left.set(xlabel="flat model: edges per unseen mistake",
             ylabel="unseen gain, hierarchical - flat (points)",
             title=f"paired gain per offset and seed ({n_seeds} seeds)")  # fmt: skip
    left.legend(fontsize=7)
    names = ("superclass", "mid node", "class")
    for method, style in (("flat", "-"), ("sequential", "--")):
        for level, name in enumerate(names):
            acc = [np.mean([r.methods[method].unseen_level_acc[level] for r in record.grid[v]])
                   for v in grid]  # fmt: skip
            right.plot(grid, acc, style, marker="o", ms=3, color=f"C{level}",
                       label=f"{LABELS[method]}: {name}")  # fmt: skip
    if record.chosen is not None:
        right.axvline(record.chosen, color="0.4", lw=0.8, ls=":")
    chosen_text = "no offset qualified" if record.chosen is None else "dotted: s*"
    right.set(xlabel="subpopulation offset norm", ylabel="unseen accuracy (%)",
              title=f"unseen accuracy by level (dashed: hierarchical; {chosen_text})")  # fmt: skip
    right.legend(fontsize=6)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "hierarchy_faithful_mechanism.png")
    return "hierarchy_faithful_mechanism.png"
