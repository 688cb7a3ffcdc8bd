"""The work of the ``utilized_rank`` experiment: training, the width and ViT studies, and the
compression sweep of the widest model over seeds."""

from __future__ import annotations

import copy
import statistics
from typing import Any

import torch
from torch import nn

from netprism.compression.factorize import Factorized
from netprism.compression.utilized_rank import (
    METHODS,
    decompose,
    layer_errors,
    layer_statistics,
    parameter_count,
    project,
    utilized_rank,
)
from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.data.base import TensorDataset
from netprism.experiments.utilized_rank.config import UtilizedRankConfig
from netprism.experiments.utilized_rank.records import RankStudy
from netprism.models import MODELS, create_model
from netprism.train import TrainConfig, evaluate, fit


def mnist1d_split(num_samples: int) -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D with ``num_samples`` samples split 50/50 (generated offline, cached)."""
    kwargs: dict[str, Any] = {"num_samples": num_samples, "train_split": 0.5}
    return load_dataset("mnist1d", **kwargs), load_dataset("mnist1d", split="test", **kwargs)


def measure(config: UtilizedRankConfig) -> RankStudy:
    """Train every width (first seed) and the widest model on every seed; study the widths;
    compress each seed's widest model; last, the small-ViT analogue."""
    dev = config.device
    train, test = mnist1d_split(config.num_samples)
    wide = config.widths[-1]
    seeds = list(config.seeds)
    models = {w: _train(w, seeds[0], train, config) for w in config.widths[:-1]}
    wide_models = {s: _train(wide, s, train, config) for s in seeds}
    models[wide] = wide_models[seeds[0]]
    study = _width_study(models, train, test, config.threshold, dev)
    rows: list[dict[str, Any]] = []
    refs: dict[int, dict[str, float]] = {}
    for seed, model in wide_models.items():
        tuned = copy.deepcopy(model)
        _finetune(tuned, train, seed, config)
        refs[seed] = {
            "original": evaluate(model, test, device=dev)["accuracy"],
            "original_ft": evaluate(tuned, test, device=dev)["accuracy"],
        }
        rows += _compress_seed(model, train, test, seed, config)
    return RankStudy(study, rows, refs, _vit_study(config))


def _train(width: int, seed: int, train: TensorDataset, config: UtilizedRankConfig) -> nn.Module:
    """An MLP 40-w-w-10 initialised on the CPU from ``seed``, trained on ``config.device``."""
    seed_everything(seed)
    model = create_model("mlp", input_shape=(40,), num_classes=10, hidden=(width, width))
    tc = TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, optimizer="adam",
        weight_decay=0.0, seed=seed, device=config.device, progress=False,
    )  # fmt: skip
    fit(model, train, tc)
    return model.eval()


def _finetune(
    model: nn.Module, train: TensorDataset, seed: int, config: UtilizedRankConfig
) -> None:
    tc = TrainConfig(
        epochs=config.finetune_epochs, batch_size=config.batch_size, lr=config.finetune_lr,
        optimizer="adam", weight_decay=0.0, seed=seed, device=config.device, progress=False,
    )  # fmt: skip
    fit(model, train, tc)
    model.eval()


def _preservation(model: nn.Module, train: TensorDataset, test: TensorDataset) -> dict[str, float]:
    """Max |d logit| / max |logit| of the float64 projection at threshold 1.0 (on the model's
    device)."""
    m64 = copy.deepcopy(model).double().eval()
    device = next(m64.parameters()).device
    x, x_test = train.x.to(device, torch.float64), test.x.to(device, torch.float64)
    projected = project(m64, x, threshold=1.0)
    with torch.no_grad():
        ref, ref_test = m64(x), m64(x_test)
        calib = float((projected(x) - ref).abs().max() / ref.abs().max())
        held = float((projected(x_test) - ref_test).abs().max() / ref_test.abs().max())
    return {"calibration": calib, "held_out": held}


def _width_study(
    models: dict[int, nn.Module],
    train: TensorDataset,
    test: TensorDataset,
    tau: float,
    device: str = "cpu",
) -> dict[int, Any]:
    """Utilized rank, accuracy and function preservation of each width's model; the layer
    statistics stream through the model on its device, and it is scored on ``device``."""
    out: dict[int, Any] = {}
    for width, model in models.items():
        report = utilized_rank(model, train, threshold=tau)
        by_name = {la.name: la for la in report.layers}
        out[width] = {
            "report": report,
            "hidden_u": by_name["fc2"].utilization,
            "mlu": report.mlu,
            "full_rank": all(la.weight_rank == min(la.d_in, la.d_out) for la in report.layers),
            "accuracy": evaluate(model, test, device=device)["accuracy"],
            "preserve": _preservation(model, train, test),
        }
    return out


def _vit_study(config: UtilizedRankConfig) -> dict[str, float]:
    """Utilization of a small ViT's attention (q, k, v, proj) and MLP projections on digits
    at two widths: an analogue, not a reproduction of the paper's ImageNet ViT figures."""
    if not config.vit_dims or "vit_tiny" not in MODELS.names():
        return {}
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    out: dict[str, float] = {}
    for dim in config.vit_dims:
        seed_everything(config.seeds[0])
        model = create_model("vit_tiny", input_shape=(1, 8, 8), num_classes=10, dim=dim, depth=2)
        tc = TrainConfig(
            epochs=config.vit_epochs, batch_size=64, lr=config.lr, optimizer="adam",
            weight_decay=0.0, seed=config.seeds[0], device=config.device, progress=False,
        )  # fmt: skip
        fit(model, train, tc)
        report = utilized_rank(model.eval(), train, threshold=config.threshold)
        attn = [la.utilization for la in report.layers if ".attn." in la.name]
        mlp = [la.utilization for la in report.layers if ".mlp." in la.name]
        full = all(la.weight_rank == min(la.d_in, la.d_out) for la in report.layers)
        out[f"vit_u_attn_d{dim}"] = statistics.fmean(attn)
        out[f"vit_u_mlp_d{dim}"] = statistics.fmean(mlp)
        out[f"vit_mlu_d{dim}"] = report.mlu
        out[f"vit_test_accuracy_d{dim}"] = evaluate(model, test, device=config.device)["accuracy"]
        out[f"vit_all_full_rank_d{dim}"] = float(full)
    return out


def _compress_seed(
    model: nn.Module,
    train: TensorDataset,
    test: TensorDataset,
    seed: int,
    config: UtilizedRankConfig,
) -> list[dict[str, Any]]:
    """One row per (threshold, method): parameter fraction, accuracy before/after FT, errors."""
    calib, held = layer_statistics(model, train), layer_statistics(model, test)
    n_params = parameter_count(model)
    rows = []
    for tau in config.thresholds:
        for method in METHODS:
            small = decompose(model, train, threshold=tau, method=method, stats=calib)
            errors = layer_errors(model, small, stats=held)
            factored = [n for n, m in small.named_modules() if isinstance(m, Factorized)]
            before = evaluate(small, test, device=config.device)["accuracy"]
            _finetune(small, train, seed, config)
            rows.append(
                {
                    "seed": seed, "threshold": tau, "method": method,
                    "param_fraction": parameter_count(small) / n_params,
                    "acc_before": before,
                    "acc_after": evaluate(small, test, device=config.device)["accuracy"],
                    "errors": errors, "factorized": factored,
                }
            )  # fmt: skip
    return rows
