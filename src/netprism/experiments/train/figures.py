"""Figure of the ``train`` experiment: the training curves."""

from __future__ import annotations

from pathlib import Path

from netprism.experiments.train.config import TrainExperimentConfig
from netprism.experiments.train.records import TrainRun


def draw(record: TrainRun, config: TrainExperimentConfig, out_dir: Path) -> list[str]:
    """The loss and accuracy curves; returns the figure file names."""
    return [_plot_history(record.history, out_dir)]


def _plot_history(history: list[dict[str, float]], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(8, 3.2))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] + 1 for h in history]
    ax_loss.plot(epochs, [h["loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [h["accuracy"] for h in history], label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "training_curves.png")
    return "training_curves.png"
