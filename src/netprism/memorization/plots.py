"""Pictures of memorization: sample grids, score histograms, ROC curves, AUROC over training.

Each function returns a ``matplotlib.figure.Figure`` (no pyplot, no global state); save it with
``fig.savefig(path)`` or :func:`netprism.report.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from netprism.core.metrics import roc_curve


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def sample_grid(
    x: torch.Tensor,
    indices: Sequence[int],
    labels: torch.Tensor,
    *,
    true_labels: torch.Tensor | None = None,
    scores: torch.Tensor | None = None,
    title: str = "",
    columns: int = 8,
) -> Any:
    """A grid of samples with their labels (and true labels where they differ).

    Images ``(C, H, W)`` are drawn with ``imshow``; 1-D inputs ``(D,)`` as line plots.

    Parameters
    ----------
    x : Tensor (N, *input_shape)
    indices : sequence of int
        Which samples, in display order.
    labels : LongTensor (N,)
        Given (possibly noisy) labels.
    true_labels : LongTensor (N,), optional
        Clean labels; shown as "given->true" in red where they differ.
    scores : Tensor (N,), optional
        Printed under each panel.
    """
    idx = list(indices)
    rows = max(1, -(-len(idx) // columns))
    fig = _figure(1.3 * columns, 1.5 * rows + 0.4)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        _draw_sample(ax, x[i])
        given = int(labels[i])
        text, color = f"#{i} y={given}", "black"
        if true_labels is not None and int(true_labels[i]) != given:
            text, color = f"#{i} y={given}->{int(true_labels[i])}", "tab:red"
        if scores is not None:
            text += f"\n{float(scores[i]):.3g}"
        ax.set_title(text, fontsize=7, color=color)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _draw_sample(ax: Any, sample: torch.Tensor) -> None:
    s = sample.detach().cpu().float()
    if s.ndim == 3:
        img = s.permute(1, 2, 0).squeeze(-1)  # (H, W) or (H, W, C)
        lo, hi = float(img.min()), float(img.max())
        ax.imshow(((img - lo) / (hi - lo + 1e-12)).numpy(), cmap="gray" if img.ndim == 2 else None)
    else:
        ax.axis("on")
        ax.plot(s.flatten().numpy(), linewidth=0.8)
        ax.set_xticks([])
        ax.set_yticks([])


def score_histogram(
    scores: torch.Tensor,
    positives: torch.Tensor,
    *,
    name: str = "score",
    labels: tuple[str, str] = ("clean", "noisy"),
) -> Any:
    """Histogram of ``scores`` split by the boolean ``positives`` mask (log-scaled x if wide)."""
    s = scores.detach().double()
    fig = _figure(5, 3.2)
    ax = fig.subplots()
    log = bool((s > 0).all()) and float(s.max() / s.min().clamp_min(1e-300)) > 1e3
    values = s.log10() if log else s
    bins = torch.linspace(float(values.min()), float(values.max()), 41).numpy()
    ax.hist(values[~positives].numpy(), bins=bins, alpha=0.6, label=labels[0], density=True)
    ax.hist(values[positives].numpy(), bins=bins, alpha=0.6, label=labels[1], density=True)
    ax.set(xlabel=f"log10 {name}" if log else name, ylabel="density")
    ax.legend()
    fig.tight_layout()
    return fig


def roc_curves(
    scores: Mapping[str, torch.Tensor],
    positives: torch.Tensor,
    *,
    aurocs: Mapping[str, float] | None = None,
    title: str = "",
) -> Any:
    """ROC curve of every method against the planted positives."""
    fig = _figure(5, 4.5)
    ax = fig.subplots()
    for name, values in scores.items():
        fpr, tpr = roc_curve(positives, values)
        label = f"{name} ({aurocs[name]:.3f})" if aurocs and name in aurocs else name
        ax.plot(fpr.numpy(), tpr.numpy(), label=label, linewidth=1.2)
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def auroc_over_epochs(
    curves: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    every: Mapping[str, int] | None = None,
) -> Any:
    """Single-epoch AUROC of each score across training (x = epoch)."""
    fig = _figure(5.5, 3.4)
    ax = fig.subplots()
    for name, values in curves.items():
        step = (every or {}).get(name, 1)
        ax.plot([1 + step * e for e in range(len(values))], list(values), label=name)
    ax.set(xlabel="epoch", ylabel="AUROC of that epoch's score", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
