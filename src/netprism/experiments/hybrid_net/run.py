"""The work of the ``hybrid_net`` experiment: per dataset and seed, FP, pure XNOR, the PCA
pass on the trained XNOR net, Hybrid-Net at each precision and the all-hidden control; then
the faithful variant's deep XNOR net and its PCA readings."""

from __future__ import annotations

from typing import Any

from netprism.compression.hybrid import (
    HybridNet,
    SignificantLayers,
    compare_energy,
    energy,
    hybrid_precisions,
    layer_costs,
    significant_layers,
)
from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.experiments.hybrid_net.config import DATASETS, HybridNetConfig, faithful_config
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
    _check_net(config.widths, config.pool_after)
    _check_lens(config.threshold, config.where)
    if config.pca_samples < 2:
        raise ValueError(f"pca_samples must be >= 2, got {config.pca_samples}")
    if config.faithful_seeds:
        _validate_faithful(config)


def _check_net(
    widths: tuple[int, ...], pool_after: tuple[int, ...] | None, prefix: str = ""
) -> None:
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(
            f"{prefix}widths must give conv1 and at least one hidden layer (>= 2 positive "
            f"values), got {widths}"
        )
    if pool_after is not None and (
        len(set(pool_after)) != len(pool_after) or any(not 0 <= p < len(widths) for p in pool_after)
    ):
        raise ValueError(
            f"{prefix}pool_after must name distinct blocks 0..{len(widths) - 1}, got {pool_after}"
        )


def _check_lens(threshold: float, where: str, prefix: str = "") -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"{prefix}threshold must lie in (0, 1], got {threshold!r}")
    if where not in ("pre", "post"):
        raise ValueError(f"{prefix}where must be 'pre' or 'post', got {where!r}")


def _validate_faithful(config: HybridNetConfig) -> None:
    if config.faithful_dataset not in DATASETS:
        raise ValueError(
            f"faithful_dataset must be one of {DATASETS}, got {config.faithful_dataset!r}"
        )
    if min(config.faithful_epochs, config.faithful_batch_size) < 1:
        raise ValueError(
            f"faithful_epochs and faithful_batch_size must be >= 1, got "
            f"{config.faithful_epochs} and {config.faithful_batch_size}"
        )
    _check_net(config.faithful_widths, config.faithful_pool_after, "faithful_")
    if not config.faithful_thresholds:
        raise ValueError("faithful_thresholds must name the claim's threshold (first)")
    for threshold in config.faithful_thresholds:
        _check_lens(threshold, config.faithful_where, "faithful_")


def measure(config: HybridNetConfig) -> list[SeedRun]:
    """Every dataset (loaded once) and its seeds: ``seeds`` on the first, ``context_seeds``
    on the others; one record per dataset and seed, in that order.  Then every seed of the
    faithful variant (records marked ``faithful``).  Every network is built once first, so a
    ``pool_after`` that pools a signal below one sample fails before any training."""
    faithful = faithful_config(config)
    names = set(config.datasets) | ({faithful.datasets[0]} if faithful.seeds else set())
    loaded = {name: _load(name, config) for name in names}
    for cfg in (config, faithful) if faithful.seeds else (config,):
        for name in cfg.datasets:
            _net(cfg, loaded[name], _full(cfg))
    runs: list[SeedRun] = []
    for i, name in enumerate(config.datasets):
        for seed in config.seeds if i == 0 else config.context_seeds:
            runs.append(_one_seed(config, i, loaded[name], seed))
    for seed in faithful.seeds:
        runs.append(_faithful_seed(faithful, loaded[faithful.datasets[0]], seed))
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


def _full(config: HybridNetConfig) -> tuple[int, ...]:
    """Every layer at full precision (conv layers and ``fc``)."""
    return (FULL_PRECISION,) * (len(config.widths) + 1)


def _net(config: HybridNetConfig, data: dict[str, Any], precisions: tuple[int, ...]) -> HybridNet:
    return HybridNet(data["shape"], data["classes"], precisions, widths=config.widths,
                     pool_after=config.pool_after)  # fmt: skip


def _one_seed(config: HybridNetConfig, index: int, data: dict[str, Any], seed: int) -> SeedRun:
    names = _net(config, data, _full(config)).layer_names
    hidden = list(names[1:-1])
    trained: dict[tuple[int, ...], tuple[float, HybridNet]] = {}

    def train(precisions: tuple[int, ...]) -> float:
        if precisions not in trained:
            trained[precisions] = _train(config, index, data, seed, precisions)
        return trained[precisions][0]

    precisions: dict[str, tuple[int, ...]] = {
        "fp": _full(config),
        "xnor": hybrid_precisions(names, [], 2),
    }
    accs = {key: train(p) for key, p in precisions.items()}
    xnor_net = trained[precisions["xnor"]][1]
    sig, sig_other, _ = _read(config, xnor_net, data, (config.threshold,))
    for b in config.bits:
        precisions[f"hybrid_k{b}"] = hybrid_precisions(names, sig.significant, b)
    precisions[f"all_hidden_k{config.control_bits}"] = hybrid_precisions(
        names, hidden, config.control_bits
    )
    accs.update({key: train(p) for key, p in precisions.items() if key not in accs})
    energies, layer_pj = _energies(config, data, precisions)
    return SeedRun(
        dataset=data["name"],
        seed=seed,
        layers=list(names),
        precisions=precisions,
        accuracy=accs,
        energy=energies,
        layer_energy_pj=layer_pj,
        macs=[c.macs for c in layer_costs(xnor_net, data["shape"])],
        significant=sig,
        significant_other=sig_other,
        trainings=len(trained),
        **_channels(xnor_net),
    )


def _faithful_seed(config: HybridNetConfig, data: dict[str, Any], seed: int) -> SeedRun:
    """One seed of the faithful variant (``config`` from ``faithful_config``): the XNOR net
    only, read by PCA under both lenses at every one of ``faithful_thresholds``."""
    names = _net(config, data, _full(config)).layer_names
    precisions = {"xnor": hybrid_precisions(names, [], 2)}
    acc, net = _train(config, 0, data, seed, precisions["xnor"])
    sig, sig_other, lenses = _read(config, net, data, config.faithful_thresholds)
    energies, layer_pj = _energies(config, data, precisions)
    return SeedRun(
        dataset=data["name"],
        seed=seed,
        layers=list(names),
        precisions=precisions,
        accuracy={"xnor": acc},
        energy=energies,
        layer_energy_pj=layer_pj,
        macs=[c.macs for c in layer_costs(net, data["shape"])],
        significant=sig,
        significant_other=sig_other,
        trainings=1,
        **_channels(net),
        faithful=True,
        lenses=lenses,
    )


def _read(
    config: HybridNetConfig, net: HybridNet, data: dict[str, Any], thresholds: tuple[float, ...]
) -> tuple[SignificantLayers, SignificantLayers, list[SignificantLayers]]:
    """PCA of the trained XNOR net on the first ``pca_samples`` training samples: the claim's
    lens and the other one at ``thresholds[0]``, then both lenses at every other threshold."""
    pca_x = data["train"][0][: config.pca_samples]
    other = "post" if config.where == "pre" else "pre"
    readings = [
        significant_layers(net, pca_x, threshold=t, where=where)
        for t in thresholds
        for where in (config.where, other)
    ]
    return readings[0], readings[1], readings[2:]


def _energies(
    config: HybridNetConfig, data: dict[str, Any], precisions: dict[str, tuple[int, ...]]
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Each model's ``compare_energy`` against FP and XNOR, and its energy per layer."""
    names = _net(config, data, _full(config)).layer_names
    models = {"fp": _full(config), "xnor": hybrid_precisions(names, [], 2), **precisions}
    reports = {k: energy(layer_costs(_net(config, data, p), data["shape"]))
               for k, p in models.items()}  # fmt: skip
    return (
        {k: compare_energy(reports[k], reports["fp"], reports["xnor"]) for k in precisions},
        {k: reports[k].layer_pj() for k in precisions},
    )


def _channels(net: HybridNet) -> dict[str, Any]:
    """Input channels, output channels (widths) and fan-in (C_in x taps) of every conv layer,
    as ``SeedRun`` fields."""
    convs = [getattr(net, name).conv for name in net.layer_names[:-1]]
    return {
        "in_channels": [int(c.in_channels) for c in convs],
        "widths": [int(c.out_channels) for c in convs],
        "fan_in": [int(c.weight[0].numel()) for c in convs],
    }


def _train(
    config: HybridNetConfig,
    index: int,
    data: dict[str, Any],
    seed: int,
    precisions: tuple[int, ...],
) -> tuple[float, HybridNet]:
    seed_everything(seed)  # the same initial weights for every configuration of a seed
    net = _net(config, data, precisions)
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
