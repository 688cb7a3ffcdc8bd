"""The work of the ``dct_snn`` experiment: per dataset and seed, train the ANN, convert it
with DCT and rate coding at every T, fine-tune, and sweep the latency knob."""

from __future__ import annotations

from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.experiments.dct_snn.config import DCTSNNConfig, faithful_config
from netprism.experiments.dct_snn.records import DatasetRuns, Measured
from netprism.models import create_model
from netprism.spiking import (
    DCTEncoder,
    RateEncoder,
    block_tile,
    coding_statistics,
    frequency_images,
)
from netprism.spiking.network import (
    EncodedSNN,
    SpikingNetwork,
    convert_ann,
)
from netprism.train.config import SCHEDULERS, TrainConfig
from netprism.train.loop import evaluate, fit


def validate(config: DCTSNNConfig) -> None:
    """Main dataset, time steps, schedules, kept bases and percentile, checked before any
    work (the faithful variant's too)."""
    if config.main_dataset not in config.datasets:
        raise ValueError(
            f"main_dataset {config.main_dataset!r} must be one of datasets {config.datasets}"
        )
    for name in ("ft_scheduler", "faithful_ft_scheduler"):
        if getattr(config, name) not in SCHEDULERS:
            raise ValueError(f"{name} must be one of {SCHEDULERS}, got {getattr(config, name)!r}")
    if config.faithful_seeds and not config.faithful_timesteps:
        raise ValueError("faithful_timesteps needs at least one T when faithful_seeds are given")
    bases = config.block * config.block
    for t in (*config.timesteps, *config.side_timesteps, *config.faithful_timesteps):
        if t <= 0 or t % bases:
            raise ValueError(f"timesteps must be positive multiples of {bases} (block^2), got {t}")
    for k in config.keep_bases:
        if not 1 <= k <= bases:
            raise ValueError(f"keep_bases must lie in [1, {bases}], got {k}")
    if not 0.0 < config.percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {config.percentile}")


def measure(config: DCTSNNConfig) -> Measured:
    """Every dataset (at its T), the faithful variant (main dataset, its own settings; none
    without ``faithful_seeds``), then the reconstruction error and the coding statistics of
    every dataset at each of its T (the main dataset's also at the faithful T)."""
    plan = [(d, config.timesteps) for d in config.datasets]
    plan += [(d, config.side_timesteps) for d in config.side_datasets]
    runs = [_one_dataset(config, name, steps) for name, steps in plan]
    twin = None
    if config.faithful_seeds:
        twin = _one_dataset(faithful_config(config), config.main_dataset, config.faithful_timesteps)
        twin.faithful = True
    recon = {r.dataset: reconstruction_error(r.test_x, config.block) for r in runs}
    stats = {r.dataset: coding_statistics(r.test_x, min(config.timesteps)) for r in runs}
    coding = {r.dataset: _coding_at_every_t(r, twin, config.block) for r in runs}
    return Measured(runs, recon, stats, coding, twin)


def _coding_at_every_t(
    runs: DatasetRuns, twin: DatasetRuns | None, block: int
) -> dict[int, dict[str, float]]:
    """:func:`coding_statistics` of one dataset's test images at each T it ran (and each T of
    the faithful variant when that ran on the same dataset), keyed by T."""
    steps = set(runs.timesteps)
    if twin is not None and twin.dataset == runs.dataset:
        steps |= set(twin.timesteps)
    return {t: coding_statistics(runs.test_x, t, block) for t in sorted(steps)}


def reconstruction_error(x: torch.Tensor, block: int) -> float:
    """Max |sum of one cycle of frequency images - block-tiled image| (float32).

    Parameters
    ----------
    x : torch.Tensor
        Images, shape ``(B, C, H, W)``.
    block : int
        DCT block side.
    """
    frames = frequency_images(x.float(), block)  # (b*b, B, C, H', W')
    return float((frames.sum(0) - block_tile(x.float(), block)).abs().max())


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
    """BPTT through all T steps: Adam with weight decay, the configured lr, epochs, batch size
    and per-epoch lr schedule (``config.ft_scheduler``)."""
    cfg = TrainConfig(
        epochs=config.ft_epochs,
        batch_size=config.ft_batch_size,
        lr=config.ft_lr,
        optimizer="adam",
        weight_decay=config.weight_decay,
        scheduler=config.ft_scheduler,
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
