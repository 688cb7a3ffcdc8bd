"""``hybrid_net``: Hybrid-Net's PCA-chosen k-bit layers against pure XNOR, with 45 nm energy.

Chakraborty, Roy, Garg, Ankit & Roy, "Constructing Energy-efficient Mixed-precision Neural
Networks through Principal Component Analysis for Edge Intelligence", Nature Machine
Intelligence 2020, arXiv 1906.01493 (XNOR-Net: Rastegari et al., ECCV 2016, arXiv 1603.05279).
Recipe and network from our calibration on digits:
conv1 (FP) -> h1..h4 (quantized) -> fc (FP), Adam lr 3e-3 with a cosine schedule, no weight
decay; MNIST-1D batch 128 for 20 epochs, digits batch 64; inputs standardised with the
training set's global mean and std.

Per dataset and seed, trained from scratch with the same seed: the FP net, pure XNOR
(h1..h4 binary), the PCA pass on the trained XNOR net (channel-wise, centered, 99 % of the
variance, conv outputs before BN on the first ``pca_samples`` training samples), Hybrid-Net
at each of ``bits`` on the layers PCA flags, and the all-hidden-k control.  A configuration
that equals an earlier one (e.g. PCA flags every hidden layer) is trained once and reused.
Energies come from :mod:`netprism.compression.hybrid` (compute + SRAM weight reads).

The paper's 94 % of XNOR's efficiency cannot be expected here: the full-precision first and
last layers dominate a small net's energy, so any k-bit hidden layer costs a large share of
the tiny binary budget.  Small scale trains digits for fewer epochs than the calibration (10
instead of 30) and MNIST-1D for the calibration's 20, to stay within 10 minutes on 2 cores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netprism.compression.hybrid import (
    HybridNet,
    compare_energy,
    energy,
    hybrid_precisions,
    layer_costs,
    significant_layers,
)
from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.experiments._hybrid_net_report import (
    SeedRun,
    claims_and_metrics,
    plot_all,
)
from netprism.experiments.base import Result, register_experiment, seeded_result
from netprism.io import atomic_write_text
from netprism.nn.quant import FULL_PRECISION, check_bits
from netprism.train import TrainConfig, evaluate, fit

DATASETS = ("mnist1d", "digits")


@dataclass(frozen=True)
class HybridNetConfig:
    """Config of the ``hybrid_net`` experiment (defaults = small scale).

    ``datasets[0]`` is the claims' dataset; ``epochs`` / ``batch_size`` hold one value per
    dataset (or one for all); ``seeds`` apply to the first dataset, ``context_seeds`` to the
    others.
    """

    datasets: tuple[str, ...] = ("mnist1d", "digits")
    epochs: tuple[int, ...] = (20, 10)
    batch_size: tuple[int, ...] = (128, 64)
    lr: float = 3e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    context_seeds: tuple[int, ...] = (0, 1, 2)
    widths: tuple[int, ...] = (32, 64, 64, 128, 128)
    bits: tuple[int, ...] = (2, 4)  # Hybrid-Net precisions; the first is the claim's
    control_bits: int = 2  # every hidden layer at this precision (control)
    threshold: float = 0.99
    where: str = "pre"  # "pre": conv outputs before BN; "post": quantized activations
    pca_samples: int = 1000
    train_samples: int | None = None  # cap on training samples (tiny scale)
    test_samples: int | None = None
    min_gain: float = 3.0  # points over XNOR
    min_fraction: float = 0.65  # of XNOR's energy efficiency
    paper_fraction: float = 0.94
    device: str = "auto"
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": (1,),
        "batch_size": (64,),
        "widths": (4, 8, 8, 8, 8),
        "train_samples": 256,
        "test_samples": 128,
        "pca_samples": 128,
        "context_seeds": (0,),
    },
    "small": {},
    "full": {"epochs": (20, 30), "seeds": (0, 1, 2, 3, 4), "context_seeds": (0, 1, 2, 3, 4)},
}


@register_experiment(
    "hybrid_net",
    config=HybridNetConfig,
    scales=SCALES,
    demo=False,
    paper="Chakraborty, Roy, Garg, Ankit & Roy, Constructing Energy-efficient Mixed-precision "
    "Neural Networks through PCA for Edge Intelligence (Nature Machine Intelligence 2020, "
    "arXiv 1906.01493)",
)
def run(config: HybridNetConfig, *, out_dir: Path | None = None) -> Result:
    """FP, XNOR, Hybrid-Net and the all-hidden control on every dataset and seed."""
    _validate(config)
    runs: list[SeedRun] = []
    with torch_threads(config.threads):
        for i, name in enumerate(config.datasets):
            data = _load(name, config)
            for seed in config.seeds if i == 0 else config.context_seeds:
                runs.append(_one_seed(config, i, data, seed))
    claims, metrics, baselines = claims_and_metrics(runs, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, config, Path(out_dir))
        data_out = [r.to_dict() for r in runs]
        atomic_write_text(Path(out_dir) / "hybrid_runs.json", json.dumps(data_out, indent=1))
    return seeded_result(
        "hybrid_net", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: HybridNetConfig) -> None:
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
    if not config.seeds or (len(config.datasets) > 1 and not config.context_seeds):
        raise ValueError("seeds (and context_seeds with several datasets) must name a seed")
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
