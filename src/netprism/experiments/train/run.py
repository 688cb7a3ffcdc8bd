"""The work of the ``train`` experiment: fit the model on the engine, evaluate it and the
majority-class and logistic-regression baselines."""

from __future__ import annotations

from typing import Any

import numpy as np

from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.experiments.train.config import TrainExperimentConfig
from netprism.experiments.train.records import TrainRun
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit


def measure(config: TrainExperimentConfig) -> TrainRun:
    """Train ``config.model`` on ``config.dataset``; evaluate it and the baselines."""
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
    test_metrics = evaluate(model, test, device=config.device)
    return TrainRun(
        history=fitted.history,
        test_metrics=test_metrics,
        baselines=_baselines(train.x, train.y, test.x, test.y, config.seed),
        n_train=len(train),
        n_test=len(test),
        parameters=sum(p.numel() for p in model.parameters()),
        resumed_from=fitted.resumed_from,
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
