"""PNG figures for experiment results, written atomically and without a display.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot, so no GUI backend and
no global figure list) and saved as PNG through Agg. ``save_figure`` also accepts figures
made with pyplot and closes them, so long reproductions do not pile up open figures.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netprism.io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_METHOD_COLOR = "#0969da"
_PEER_COLOR = "#8c959f"


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Save ``fig`` as a PNG at ``path`` atomically, then close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, made with or without pyplot.
    path : str or Path
        Target file; must end in ``.png``. Parent folders are created.
    dpi : int, default 120
        Resolution of the PNG.

    Returns
    -------
    Path
        ``path``, once the complete PNG is in place.

    Examples
    --------
    >>> import tempfile
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 2)); _ = fig.add_subplot().plot([0, 1], [1, 0])
    >>> save_figure(fig, Path(tempfile.mkdtemp()) / "line.png").name
    'line.png'
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(
            f"save_figure writes PNG files; expected a path ending in .png, got {str(path)!r}"
        )
    try:
        buffer = io.BytesIO()
        # format="png" renders through Agg whatever the figure's canvas: no display needed.
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        atomic_write_bytes(path, buffer.getvalue())
    finally:
        _close(fig)
    return path


def bar_chart(
    values: Mapping[str, float],
    *,
    title: str,
    ylabel: str,
    path: str | Path,
    highlight: str | None = None,
) -> Path:
    """Draw a labelled bar per entry of ``values`` (a quick method-vs-baselines chart).

    Parameters
    ----------
    values : Mapping[str, float]
        Bar label -> height, drawn in the given order. NaN values get an empty bar
        labelled ``nan``.
    title, ylabel : str
        Axes title and y-axis label.
    path : str or Path
        Where to write the PNG (see :func:`save_figure`).
    highlight : str, optional
        Name of the bar to draw in the accent colour (usually the paper's method); the
        others are grey. With ``None`` every bar uses the accent colour.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "acc.png"
    >>> bar_chart({"ours": 0.91, "finetune": 0.62}, title="accuracy", ylabel="ACC",
    ...           path=out, highlight="ours").exists()
    True
    """
    if not values:
        raise ValueError("bar_chart needs at least one value, got an empty mapping")
    if highlight is not None and highlight not in values:
        raise ValueError(f"highlight {highlight!r} is not one of the bars {list(values)}")
    from matplotlib.figure import Figure

    names = [str(name) for name in values]
    heights = [float(v) for v in values.values()]
    colors = [_METHOD_COLOR if highlight in (None, name) else _PEER_COLOR for name in names]
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.2))
    ax = fig.add_subplot()
    finite = [0.0 if math.isnan(h) else h for h in heights]  # NaN bars would break layout
    bars = ax.bar(range(len(names)), finite, color=colors)
    ax.bar_label(bars, labels=[f"{h:.4g}" for h in heights], padding=2, fontsize=8)
    rotate = 30 if max(len(n) for n in names) > 8 else 0
    ax.set_xticks(range(len(names)), names, rotation=rotate, ha="right" if rotate else "center")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(y=0.15)
    return save_figure(fig, path)


def accuracy_matrix(ax: Axes, R: Any, *, title: str) -> None:
    """Draw a continual-learning accuracy matrix on ``ax``, each cell annotated.

    Parameters
    ----------
    ax : matplotlib Axes
    R : array (T, T)
        ``R[i, j]``: accuracy in percent on task ``j`` after training task ``i``.
    title : str
    """
    import numpy as np

    ax.imshow(R, vmin=0, vmax=100, cmap="viridis")
    for (i, j), v in np.ndenumerate(R):
        color = "white" if v < 60 else "black"
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color=color)
    ax.set(title=title, xlabel="tested on task j", ylabel="after training task i")


def _close(fig: Figure) -> None:
    """Release ``fig``: drop it from pyplot's figure list if pyplot is in use."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
