"""Claim and metrics of the ``train`` experiment."""

from __future__ import annotations

from netprism.core.results import Claim
from netprism.experiments.train.config import TrainExperimentConfig
from netprism.experiments.train.records import TrainRun


def claims_and_metrics(
    record: TrainRun, config: TrainExperimentConfig
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The test-accuracy claim, the flat metrics and the baselines of the run."""
    claim = Claim(
        id="test_accuracy",
        text=f"{config.model} on {config.dataset} reaches >= {config.target_accuracy:.0%} "
        f"test accuracy after {config.epochs} epochs",
        measured=record.test_metrics["accuracy"],
        target=config.target_accuracy,
        op=">=",
        baseline=record.baselines["logistic_regression"]["test_accuracy"],
        baseline_name="logistic regression",
    )
    history = record.history
    metrics = {
        "test_accuracy": record.test_metrics["accuracy"],
        "test_loss": record.test_metrics["loss"],
        "train_accuracy": history[-1]["accuracy"] if history else float("nan"),
        "n_train": record.n_train,
        "n_test": record.n_test,
        "parameters": record.parameters,
    }
    if record.resumed_from is not None:
        metrics["resumed_from_epoch"] = record.resumed_from
    return [claim], metrics, record.baselines
