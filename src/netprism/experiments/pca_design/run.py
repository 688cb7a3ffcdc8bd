"""The per-seed work of the ``pca_design`` experiment: train the VGG, design by PCA at each
threshold, retrain the design from scratch, and prune the original by L1 to the same MACs."""

from __future__ import annotations

from typing import Any

from netprism.compression.l1_pruning import l1_prune_to_macs
from netprism.compression.pca_design import design, output_spectra
from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.experiments.pca_design.config import PCADesignConfig
from netprism.experiments.pca_design.records import DesignRun, L1Run, SeedRun
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit


def validate(config: PCADesignConfig) -> None:
    """At least one threshold and one seed, checked before any work."""
    if not config.thresholds or not config.seeds:
        raise ValueError("pca_design needs at least one threshold and one seed")


def measure(config: PCADesignConfig) -> list[SeedRun]:
    """Every seed on the one train/test split (loaded once, with seed 0)."""
    train = load_dataset(config.dataset, split="train", data_dir=config.data_dir, seed=0)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir, seed=0)
    return [one_seed(config, seed, train, test) for seed in config.seeds]


def _train_config(config: PCADesignConfig, seed: int, lr: float) -> TrainConfig:
    return TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=lr,
        weight_decay=config.weight_decay,
        seed=seed,
        device=config.device,
        progress=False,
    )


def one_seed(config: PCADesignConfig, seed: int, train: Any, test: Any) -> SeedRun:
    """Train the original, then design, retrain and L1-prune at every threshold."""
    seed_everything(seed)
    base = {"input_shape": train.input_shape, "num_classes": train.num_classes}
    base |= {"depth": config.depth, "width_mult": config.width_mult}
    model = create_model("vgg", **base)
    fit(model, train, _train_config(config, seed, config.lr))
    original = evaluate(model, test, device=config.device)["accuracy"]
    spectra = output_spectra(model, train, seed=seed)
    example = train.x[:1]
    designs: dict[float, DesignRun] = {}
    for thr in config.thresholds:
        new_config, report = design(
            model,
            train,
            threshold=thr,
            base_config=base,
            spectra=spectra,
            apply_depth_rule=config.apply_depth_rule,
        )
        seed_everything(seed)
        designed = create_model(**new_config)
        fit(designed, train, _train_config(config, seed, config.lr))
        accuracy = evaluate(designed, test, device=config.device)["accuracy"]
        l1 = _l1_baseline(config, seed, model, example, report.macs_after, train, test)
        designs[thr] = DesignRun(new_config, report, accuracy, l1)
    return SeedRun(seed, original, designs)


def _l1_baseline(
    config: PCADesignConfig,
    seed: int,
    model: Any,
    example: Any,
    target_macs: int,
    train: Any,
    test: Any,
) -> L1Run | None:
    """The trained original L1-pruned to ``target_macs`` and fine-tuned; None without
    torch-pruning."""
    try:
        pruned, info = l1_prune_to_macs(
            model, example, target_macs, ignored_layers=[model.get_submodule("head")]
        )
    except ImportError:
        return None
    fit(pruned, train, _train_config(config, seed, config.finetune_lr))
    accuracy = evaluate(pruned, test, device=config.device)["accuracy"]
    return L1Run(
        pruning_ratio=info["pruning_ratio"],
        macs=int(info["macs"]),
        params=int(info["params"]),
        mac_error=info["mac_error"],
        accuracy=accuracy,
    )
