"""The heat-map table of the ``memorization_grid`` experiment and its saved runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from netprism.experiments.memorization_grid.claims import markdown, rows
from netprism.experiments.memorization_grid.config import GRID_METHODS, GridConfig
from netprism.experiments.memorization_grid.records import CellRun
from netprism.io import atomic_write_text


def draw(runs: list[CellRun], config: GridConfig, out_dir: Path) -> list[str]:
    """``memorization_grid_auroc.png``, the AUROC and precision tables
    (``memorization_grid_tables.md``) and every run (``memorization_grid_runs.json``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [dataclasses.asdict(r) for r in runs]
    atomic_write_text(out_dir / "memorization_grid_runs.json", json.dumps(records, indent=1))
    tables = (
        "# Mislabel AUROC (mean ± std over seeds)\n\n" + markdown(rows(runs)) + "\n\n"
        "# Precision at the true count\n\n" + markdown(rows(runs, "precision")) + "\n"
    )
    atomic_write_text(out_dir / "memorization_grid_tables.md", tables)
    return [_heatmap(runs, out_dir)]


def _heatmap(runs: list[CellRun], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    table = rows(runs)
    methods = [m for m in GRID_METHODS if any(m in by for by in table.values())]
    names = list(table)
    grid = np.array([[table[r][m][0] for m in methods] for r in names])  # (rows, methods)
    fig = Figure(figsize=(1.0 * len(methods) + 4.0, 0.32 * len(names) + 1.6))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", vmin=max(0.5, float(grid.min())), vmax=1.0,
                      aspect="auto")  # fmt: skip
    for i in range(len(names)):
        best = grid[i].max()
        for j in range(len(methods)):
            weight = "bold" if grid[i, j] == best else "normal"
            colour = "black" if grid[i, j] > 0.85 else "white"
            ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=6,
                    color=colour, fontweight=weight)  # fmt: skip
    ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_title(f"Mislabel AUROC, mean over seeds (best of each row in bold; {len(runs)} runs)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    save_figure(fig, out_dir / "memorization_grid_auroc.png")
    return "memorization_grid_auroc.png"
