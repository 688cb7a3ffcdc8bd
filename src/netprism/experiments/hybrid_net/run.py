"""The work of the ``hybrid_net`` experiment: per dataset and seed, FP, pure XNOR, the PCA
pass on the trained XNOR net, Hybrid-Net at each precision and the all-hidden control."""

from __future__ import annotations

from typing import Any

from netprism.compression.hybrid import (
    HybridNet,
    compare_energy,
    energy,
    hybrid_precisions,
    layer_costs,
    significant_layers,
)
from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.experiments.hybrid_net.config import DATASETS, HybridNetConfig
from netprism.experiments.hybrid_net.records import SeedRun
from netprism.nn.quant import FULL_PRECISION, check_bits
from netprism.train import TrainConfig, evaluate, fit


def validate(config: HybridNetConfig) -> None:
    """Datasets, schedules, bits, widths and the PCA settings, checked before any work."""
    if not config.datasets or any(d not in DATASETS for d in config.datasets):
        raise ValueError(
            f"datasets must be a non-empty subset of {DATASETS}, got {config.datasets}"
        )
    for key in ("epochs", "batch_size"):
        values = getattr(config, key)
        if len(values) not in (1, len(config.datasets)) or min(values) < 1:
            raise ValueError(
                f"{key} needs 1 or {len(config.datasets)} positive values, got {values!r}"
            )
    if len(config.datasets) > 1 and not config.context_seeds:
        raise ValueError(
            f"context_seeds must name a seed with several datasets {config.datasets}, "
            f"got {config.context_seeds!r}"
        )
    if not config.bits:
        raise ValueError("bits must name at least one Hybrid-Net precision")
    for b in (*config.bits, config.control_bits):
        if check_bits(b) in (1, FULL_PRECISION):
            raise ValueError(f"Hybrid-Net bits must be k-bit (2..16), got {b}")
    if len(config.widths) != 5:
        raise ValueError(f"widths must give conv1 and h1..h4 (5 values), got {config.widths}")
    if not 0.0 < config.threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {config.threshold!r}")
    if config.where not in ("pre", "post"):
        raise ValueError(f"where must be 'pre' or 'post', got {config.where!r}")
    if config.pca_samples < 2:
        raise ValueError(f"pca_samples must be >= 2, got {config.pca_samples}")


def measure(config: HybridNetConfig) -> list[SeedRun]:
    """Every dataset (loaded once) and its seeds: ``seeds`` on the first, ``context_seeds``
    on the others; one record per dataset and seed, in that order."""
    runs: list[SeedRun] = []
    for i, name in enumerate(config.datasets):
        data = _load(name, config)
        for seed in config.seeds if i == 0 else config.context_seeds:
            runs.append(_one_seed(config, i, data, seed))
    return runs


def _per_dataset(values: tuple[int, ...], i: int) -> int:
    return values[0] if len(values) == 1 else values[i]


def _load(name: str, config: HybridNetConfig) -> dict[str, Any]:
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    x, y, xt, yt = train.x, train.y, test.x, test.y
    if config.train_samples is not None:
        x, y = x[: config.train_samples], y[: config.train_samples]
    if config.test_samples is not None:
        xt, yt = xt[: config.test_samples], yt[: config.test_samples]
    mean, std = x.mean(), x.std()  # one global mean and std, from the training set
    return {
        "name": name,
        "train": ((x - mean) / std, y),
        "test": ((xt - mean) / std, yt),
        "shape": tuple(train.input_shape),
        "classes": int(train.num_classes),
    }


def _one_seed(config: HybridNetConfig, index: int, data: dict[str, Any], seed: int) -> SeedRun:
    names = HybridNet(data["shape"], data["classes"], (32,) * 6, widths=config.widths).layer_names
    hidden = list(names[1:-1])
    trained: dict[tuple[int, ...], tuple[float, HybridNet]] = {}

    def train(precisions: tuple[int, ...]) -> float:
        if precisions not in trained:
            trained[precisions] = _train(config, index, data, seed, precisions)
        return trained[precisions][0]

    precisions: dict[str, tuple[int, ...]] = {
        "fp": (FULL_PRECISION,) * len(names),
        "xnor": hybrid_precisions(names, [], 2),
    }
    accs = {key: train(p) for key, p in precisions.items()}
    xnor_net = trained[precisions["xnor"]][1]
    pca_x = data["train"][0][: config.pca_samples]
    other = "post" if config.where == "pre" else "pre"
    sig = significant_layers(xnor_net, pca_x, threshold=config.threshold, where=config.where)
    sig_other = significant_layers(xnor_net, pca_x, threshold=config.threshold, where=other)
    for b in config.bits:
        precisions[f"hybrid_k{b}"] = hybrid_precisions(names, sig.significant, b)
    precisions[f"all_hidden_k{config.control_bits}"] = hybrid_precisions(
        names, hidden, config.control_bits
    )
    accs.update({key: train(p) for key, p in precisions.items() if key not in accs})
    reports = {
        key: energy(layer_costs(HybridNet(data["shape"], data["classes"], p,
                                          widths=config.widths), data["shape"]))
        for key, p in precisions.items()
    }  # fmt: skip
    return SeedRun(
        dataset=data["name"],
        seed=seed,
        layers=list(names),
        precisions=precisions,
        accuracy=accs,
        energy={k: compare_energy(r, reports["fp"], reports["xnor"]) for k, r in reports.items()},
        layer_energy_pj={k: r.layer_pj() for k, r in reports.items()},
        macs=[c.macs for c in layer_costs(xnor_net, data["shape"])],
        significant=sig,
        significant_other=sig_other,
        trainings=len(trained),
    )


def _train(
    config: HybridNetConfig,
    index: int,
    data: dict[str, Any],
    seed: int,
    precisions: tuple[int, ...],
) -> tuple[float, HybridNet]:
    seed_everything(seed)  # the same initial weights for every configuration of a seed
    net = HybridNet(data["shape"], data["classes"], precisions, widths=config.widths)
    train_cfg = TrainConfig(
        epochs=_per_dataset(config.epochs, index),
        batch_size=_per_dataset(config.batch_size, index),
        lr=config.lr,
        optimizer="adam",
        weight_decay=0.0,
        scheduler="cosine",
        seed=seed,
        device=config.device,
        progress=False,
    )
    fit(net, data["train"], train_cfg)
    acc = evaluate(net, data["test"], device=config.device)["accuracy"]
    return float(acc), net
