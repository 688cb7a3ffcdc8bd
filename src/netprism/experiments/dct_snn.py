"""``dct_snn``: DCT temporal coding against rate coding, ANN-to-SNN hybrid training, latency knob.

Garg, Chowdhury & Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021, arXiv 2010.01795.  Our calibration on
digits found rate coding ahead of DCT on near-binary 8x8 digits at every T.

Per dataset and seed: an MLP ``D-256-256-10`` without biases (as the calibration) is trained on
pixels (Adam 1e-3, cosine); for each T and each encoder (DCT: 4x4 blocks, 16 zig-zag bases,
``T / 16`` cycles, percentile thresholds per batch; rate: Bernoulli) it is copied into an SNN
(LIF, leak 0.99, soft reset), thresholds are balanced (99.9th percentile, 512 training images),
the output layer is rescaled to the ANN's logit scale (our addition, see
:func:`netprism.spiking.network.match_output_scale`; without it fine-tuning starts from a flat
softmax and first loses accuracy) and the SNN is fine-tuned with BPTT (Adam 1e-3, weight decay
5e-4, batch 32; the calibration found lr 1e-4 barely trains).

Datasets: ``digits_tone`` (the continuous-tone case the paper's claim is about, where the claim
is tested), ``digits`` (near-binary: reported beside it) and ``textures`` (continuous-tone
gratings, at one T; so easy that the ANN scores ~100 %).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.experiments._dct_snn_report import (
    DatasetRuns,
    claims_and_metrics,
    plot_all,
    reconstruction_error,
)
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.spiking import DCTEncoder, RateEncoder, coding_statistics
from netprism.spiking.network import (
    EncodedSNN,
    SpikingNetwork,
    convert_ann,
)
from netprism.train.config import TrainConfig
from netprism.train.loop import evaluate, fit


@dataclass(frozen=True)
class DCTSNNConfig:
    """Config of the ``dct_snn`` experiment (defaults = small scale)."""

    main_dataset: str = "digits_tone"
    datasets: tuple[str, ...] = ("digits_tone", "digits")  # every T
    side_datasets: tuple[str, ...] = ("textures",)  # only at side_timesteps
    timesteps: tuple[int, ...] = (16, 32, 48)
    side_timesteps: tuple[int, ...] = (32,)
    hidden: tuple[int, ...] = (256, 256)
    ann_epochs: int = 30
    ann_lr: float = 1e-3
    ft_epochs: int = 5
    ft_lr: float = 1e-3
    ft_batch_size: int = 32
    weight_decay: float = 5e-4
    leak: float = 0.99
    block: int = 4
    balance_samples: int = 512
    percentile: float = 99.9
    keep_bases: tuple[int, ...] = (16, 12, 8, 4)
    near_ann_points: float = 3.0
    min_knob_spearman: float = 0.8
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "datasets": ("digits_tone",),
        "side_datasets": (),
        "timesteps": (16, 32),
        "ann_epochs": 3,
        "ft_epochs": 1,
        "keep_bases": (16, 8),
        "seeds": (0,),
        "balance_samples": 128,
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "ft_epochs": 10},
}


@register_experiment(
    "dct_snn",
    config=DCTSNNConfig,
    scales=SCALES,
    demo=False,
    paper="Garg, Chowdhury & Roy, DCT-SNN: Using DCT to Distribute Spatial Information over "
    "Time for Learning Low-Latency Spiking Neural Networks (ICCV 2021, arXiv 2010.01795)",
)
def run(config: DCTSNNConfig, *, out_dir: Path | None = None) -> Result:
    """Every dataset, T, encoder and seed; the claims and figures."""
    _validate(config)
    with torch_threads(config.threads):
        plan = [(d, config.timesteps) for d in config.datasets]
        plan += [(d, config.side_timesteps) for d in config.side_datasets]
        runs = [_one_dataset(config, name, steps) for name, steps in plan]
        recon = {r.dataset: reconstruction_error(r.test_x, config.block) for r in runs}
        stats = {r.dataset: coding_statistics(r.test_x, min(config.timesteps)) for r in runs}
    claims, metrics, baselines = claims_and_metrics(runs, recon, stats, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, config, Path(out_dir))
        _save(runs, Path(out_dir))
    return seeded_result(
        "dct_snn", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: DCTSNNConfig) -> None:
    check_seeds(config.seeds)
    if config.main_dataset not in config.datasets:
        raise ValueError(
            f"main_dataset {config.main_dataset!r} must be one of datasets {config.datasets}"
        )
    bases = config.block * config.block
    for t in (*config.timesteps, *config.side_timesteps):
        if t <= 0 or t % bases:
            raise ValueError(f"timesteps must be positive multiples of {bases} (block^2), got {t}")
    for k in config.keep_bases:
        if not 1 <= k <= bases:
            raise ValueError(f"keep_bases must lie in [1, {bases}], got {k}")
    if not 0.0 < config.percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {config.percentile}")


def _ann(config: DCTSNNConfig, train: TensorDataset, seed: int) -> torch.nn.Module:
    seed_everything(seed)
    ann = create_model(
        "mlp",
        input_shape=train.input_shape,
        num_classes=train.num_classes,
        hidden=config.hidden,
        bias=False,
    )
    cfg = TrainConfig(
        epochs=config.ann_epochs,
        batch_size=64,
        lr=config.ann_lr,
        optimizer="adam",
        scheduler="cosine",
        weight_decay=0.0,
        seed=seed,
        device=config.device,
        progress=False,
    )
    fit(ann, train, cfg)
    return ann.eval()


def encoder(kind: str, steps: int, block: int = 4, keep: int | None = None) -> Any:
    """The DCT encoder (``steps / K`` cycles of K bases) or the rate encoder with T steps."""
    if kind == "rate":
        return RateEncoder(steps)
    keep = keep or block * block
    return DCTEncoder(block=block, keep_bases=keep, cycles=steps // (block * block))


def finetune(config: DCTSNNConfig, model: EncodedSNN, train: TensorDataset, seed: int) -> None:
    """BPTT through all T steps: Adam, weight decay, lr halved... as configured."""
    cfg = TrainConfig(
        epochs=config.ft_epochs,
        batch_size=config.ft_batch_size,
        lr=config.ft_lr,
        optimizer="adam",
        weight_decay=config.weight_decay,
        scheduler="none",
        seed=seed,
        device=config.device,
        progress=False,
    )
    fit(model, train, cfg)


def _one_dataset(config: DCTSNNConfig, name: str, steps: tuple[int, ...]) -> DatasetRuns:
    train = load_dataset(name, split="train", data_dir=config.data_dir)
    test = load_dataset(name, split="test", data_dir=config.data_dir)
    runs = DatasetRuns(name, steps, test.x)
    for seed in config.seeds:
        ann = _ann(config, train, seed)
        runs.ann.append(evaluate(ann, test, device=config.device)["accuracy"])
        for kind in ("dct", "rate"):
            for t in steps:
                seed_everything(seed)
                enc = encoder(kind, t, config.block)
                model, thresholds = convert_ann(
                    ann, enc, train.x[: config.balance_samples],
                    leak=config.leak, percentile=config.percentile,
                )  # fmt: skip
                snn = model.snn
                before = evaluate(model, test, device=config.device)["accuracy"]
                finetune(config, model, train, seed)
                after = evaluate(model, test, device=config.device)["accuracy"]
                runs.add(kind, t, seed, before, after, thresholds)
                if kind == "dct" and t == max(steps) and name in config.datasets:
                    runs.knob[seed] = _latency_knob(config, snn, test, t, seed)
                    if seed == config.seeds[0] and name == config.main_dataset:
                        runs.example_snn = snn
    return runs


def _latency_knob(
    config: DCTSNNConfig, snn: SpikingNetwork, test: TensorDataset, steps: int, seed: int
) -> dict[int, float]:
    """Accuracy of the trained T-step DCT SNN keeping only the first K bases of each cycle."""
    cycles = steps // (config.block * config.block)
    accs: dict[int, float] = {}
    for k in config.keep_bases:
        seed_everything(seed)
        enc = DCTEncoder(block=config.block, keep_bases=k, cycles=cycles)
        accs[k] = evaluate(EncodedSNN(enc, snn), test, device=config.device)["accuracy"]
    return accs


def _save(runs: list[DatasetRuns], out_dir: Path) -> None:
    data = {r.dataset: r.to_dict() for r in runs}
    atomic_write_text(out_dir / "dct_snn_runs.json", json.dumps(data, indent=1))
