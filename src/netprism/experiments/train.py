"""``train``: fit a registered model on a registered dataset and report test accuracy.

Not a paper's claim but the floor every method stands on: the trainer, the data and the
models must reach a known accuracy.  Baselines measured in the same run: a majority-class
predictor and multinomial logistic regression (scikit-learn) on the raw inputs.

``--checkpoint-dir DIR`` writes a checkpoint after every epoch; ``--resume`` continues the
newest one there after a kill (it must come from the same model, optimizer and run fields;
see :class:`netprism.train.TrainConfig`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.experiments.base import Claim, Result, register_experiment
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit


@dataclass(frozen=True)
class TrainExperimentConfig:
    """Config of the ``train`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    model: str = "mlp"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    target_accuracy: float = 0.95
    progress: bool = False
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models, 0 = torch default
    checkpoint_dir: str | None = None  # a checkpoint after every epoch (safetensors + JSON)
    resume: bool = False  # continue from the newest checkpoint in checkpoint_dir


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 3, "target_accuracy": 0.5},
    "small": {},
    "full": {
        "dataset": "mnist",
        "model": "lenet",
        "epochs": 20,
        "target_accuracy": 0.99,
        "threads": 0,
    },
}


@register_experiment(
    "train",
    config=TrainExperimentConfig,
    scales=SCALES,
    demo=True,
    paper="netprism foundation: trainer, data and model registry",
)
def run(config: TrainExperimentConfig, *, out_dir: Path | None = None) -> Result:
    """Train ``config.model`` on ``config.dataset`` and compare with the baselines."""
    with torch_threads(config.threads):
        return _run(config, out_dir)


def _run(config: TrainExperimentConfig, out_dir: Path | None) -> Result:
    seed_everything(config.seed)
    train = load_dataset(config.dataset, split="train", data_dir=config.data_dir, seed=config.seed)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir, seed=config.seed)
    model = create_model(config.model, input_shape=train.input_shape, num_classes=train.num_classes)
    tc = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        optimizer=config.optimizer,
        weight_decay=config.weight_decay,
        seed=config.seed,
        device=config.device,
        progress=config.progress,
        checkpoint_dir=config.checkpoint_dir,
        resume=config.resume,
    )
    fitted = fit(model, train, tc, val=test)
    history = fitted.history
    test_metrics = evaluate(model, test, device=config.device)
    baselines = _baselines(train.x, train.y, test.x, test.y, config.seed)
    figures = [] if out_dir is None else [_plot_history(history, out_dir)]
    claim = Claim(
        id="test_accuracy",
        text=f"{config.model} on {config.dataset} reaches >= {config.target_accuracy:.0%} "
        f"test accuracy after {config.epochs} epochs",
        measured=test_metrics["accuracy"],
        target=config.target_accuracy,
        op=">=",
        baseline=baselines["logistic_regression"]["test_accuracy"],
        baseline_name="logistic regression",
    )
    metrics = {
        "test_accuracy": test_metrics["accuracy"],
        "test_loss": test_metrics["loss"],
        "train_accuracy": history[-1]["accuracy"] if history else float("nan"),
        "n_train": len(train),
        "n_test": len(test),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if fitted.resumed_from is not None:
        metrics["resumed_from_epoch"] = fitted.resumed_from
    return Result(
        name="train",
        config=dataclasses.asdict(config),
        metrics=metrics,
        baselines=baselines,
        claims=[claim],
        figures=figures,
        seed=config.seed,
    )


def _baselines(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, seed: int
) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression

    xtr = x_train.reshape(len(x_train), -1).numpy()
    xte = x_test.reshape(len(x_test), -1).numpy()
    majority = int(np.bincount(y_train.numpy()).argmax())
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(xtr, y_train.numpy())
    return {
        "majority_class": {"test_accuracy": float((y_test.numpy() == majority).mean())},
        "logistic_regression": {"test_accuracy": float(clf.score(xte, y_test.numpy()))},
    }


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
