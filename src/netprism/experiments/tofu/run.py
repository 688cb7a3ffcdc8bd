"""The per-seed work of the ``tofu`` experiment: FedAvg, TOFU-only and hybrid rounds, the
bad-client runs, the fidelity sweep and the gradient-inversion attacks on one seed."""

from __future__ import annotations

import logging
from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.data.transforms import partition_clients
from netprism.experiments.tofu.config import MALFORMED, TOFUExperimentConfig
from netprism.experiments.tofu.records import PrivacyRun, SeedRuns
from netprism.federated.aggregate import AGGREGATORS
from netprism.federated.attacks import (
    analytic_fc_inversion,
    best_match_mse,
    dlg,
    inverting_gradients,
    per_truth_best,
    reconstruction_quality,
)
from netprism.federated.gradients import flat_params, params_from_flat, weighted_gradient
from netprism.federated.rounds import DOWNLINKS, EncoderConfig, local_config, run_rounds
from netprism.federated.tofu import decode_update, encode_update, hybrid_schedule
from netprism.models import create_model
from netprism.train import resolve_device


def validate(config: TOFUExperimentConfig) -> None:
    """Clients, rounds, aggregator, downlink, fault and proxy counts, checked before any work."""
    if config.n_clients < 3:
        raise ValueError(
            f"n_clients must be >= 3 (one malformed, one sign-flipping, one honest), "
            f"got {config.n_clients}"
        )
    if not 0 <= config.full_rounds <= config.rounds or config.rounds < 1:
        raise ValueError(
            f"need rounds >= 1 and 0 <= full_rounds <= rounds, "
            f"got rounds={config.rounds}, full_rounds={config.full_rounds}"
        )
    if config.aggregator not in AGGREGATORS:
        raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {config.aggregator!r}")
    if config.downlink not in DOWNLINKS:
        raise ValueError(f"downlink must be one of {DOWNLINKS}, got {config.downlink!r}")
    if config.malformed not in MALFORMED:
        raise ValueError(f"malformed must be one of {MALFORMED}, got {config.malformed!r}")
    if min((config.n_proxy, config.attack_batch, *config.fidelity_proxies)) < 1:
        raise ValueError(
            "n_proxy, attack_batch and fidelity_proxies must be >= 1, got "
            f"{config.n_proxy}, {config.attack_batch}, {config.fidelity_proxies}"
        )
    if list(config.fidelity_proxies) != sorted(set(config.fidelity_proxies)):
        raise ValueError(
            f"fidelity_proxies must be strictly increasing, got {config.fidelity_proxies}"
        )


def measure(config: TOFUExperimentConfig) -> list[SeedRuns]:
    """Every seed, with the federated logger quietened (rejections are in the round logs)."""
    fed_logger = logging.getLogger("netprism.federated")
    level = fed_logger.level
    fed_logger.setLevel(logging.ERROR)  # rejections are recorded per round in tofu_runs.json
    try:
        return [one_seed(config, seed) for seed in config.seeds]
    finally:
        fed_logger.setLevel(level)


def one_seed(config: TOFUExperimentConfig, seed: int) -> SeedRuns:
    """FedAvg, TOFU-only, hybrid and bad-client rounds, the fidelity sweep and the attacks."""
    train = load_dataset(config.dataset, data_dir=config.data_dir, seed=seed)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir, seed=seed)
    clients = partition_clients(train, config.n_clients, alpha=config.alpha, seed=seed)
    seed_everything(seed)
    model = create_model(
        "mlp", input_shape=train.input_shape, num_classes=train.num_classes, hidden=config.hidden
    )
    local = local_config(epochs=config.local_epochs, lr=config.lr, batch_size=config.batch_size)
    encoder = EncoderConfig(config.n_proxy, config.encoder_steps, config.encoder_lr)
    common: dict[str, Any] = dict(
        config=local,
        encoder=encoder,
        max_norm=config.max_norm,
        seed=seed,
        device=resolve_device(config.device),
    )
    keep = [r for r in config.fidelity_rounds if r < config.rounds]
    logs = {
        "fedavg": run_rounds(
            model, clients, test, schedule=["full"] * config.rounds, keep_rounds=keep, **common
        ),
        "tofu": run_rounds(
            model,
            clients,
            test,
            schedule=["tofu"] * config.rounds,
            downlink=config.downlink,
            **common,
        ),
        "hybrid": run_rounds(
            model,
            clients,
            test,
            schedule=hybrid_schedule(config.rounds, config.full_rounds),
            downlink=config.downlink,
            **common,
        ),
    }
    bad = ["honest"] * (config.n_clients - 2) + [config.malformed, "sign_flip"]
    for name, agg in (("bad_robust", config.aggregator), ("bad_mean", "mean")):
        logs[name] = run_rounds(
            model,
            clients,
            test,
            schedule=["full"] * config.rounds,
            aggregator=agg,
            behaviours=bad,
            **common,
        )
    fidelity = _fidelity_sweep(config, model, logs["fedavg"].snapshots, train, seed)
    privacy: dict[int, PrivacyRun] = {}
    for b in sorted({config.attack_batch, 1}):
        privacy[b] = privacy_run(config, model, clients[0], b, seed)
    return SeedRuns(seed, {k: v for k, v in logs.items()}, fidelity, privacy, n_params(model))


def n_params(model: torch.nn.Module) -> int:
    """The number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _fidelity_sweep(
    config: TOFUExperimentConfig,
    model: torch.nn.Module,
    snapshots: dict[int, tuple[torch.Tensor, list[torch.Tensor]]],
    train: Any,
    seed: int,
) -> dict[int, list[float]]:
    """cos(decoded, real) for FedAvg's real updates re-encoded with each N."""
    out: dict[int, list[float]] = {}
    for n in config.fidelity_proxies:
        cosines = []
        for r, (weights, updates) in sorted(snapshots.items()):
            for c, update in enumerate(updates):
                _, cos = encode_update(
                    model,
                    weights,
                    update,
                    input_shape=tuple(train.input_shape),
                    num_classes=train.num_classes,
                    n_proxy=n,
                    steps=config.encoder_steps,
                    lr=config.encoder_lr,
                    seed=seed * 7 + r * 31 + c,
                )
                cosines.append(cos)
        out[n] = cosines
    return out


def privacy_run(
    config: TOFUExperimentConfig, model: torch.nn.Module, data: Any, batch: int, seed: int
) -> PrivacyRun:
    """Attack one local SGD step on ``batch`` true samples, real and TOFU-decoded."""
    gen = torch.Generator().manual_seed(seed + 1_000)
    idx = torch.randperm(len(data), generator=gen)[:batch]
    x, y = data.x[idx], data.y[idx]  # (B, *input_shape), (B,)
    shape, k = tuple(data.input_shape), data.num_classes
    w0 = flat_params(model)
    update = -config.lr * weighted_gradient(model, w0, x, y)  # one SGD step on the batch
    proxy, cos = encode_update(
        model,
        w0,
        update,
        input_shape=shape,
        num_classes=k,
        n_proxy=config.n_proxy,
        steps=config.encoder_steps,
        lr=config.encoder_lr,
        seed=seed,
    )
    targets = {"real": -update / config.lr, "tofu": -decode_update(model, w0, proxy) / config.lr}
    recon: dict[str, torch.Tensor] = {}
    quality: dict[str, Any] = {"encoder_cosine": cos}
    attack = dict(batch_size=batch, input_shape=shape, num_classes=k, seed=seed)
    for name, target in targets.items():
        recon[f"ig_{name}"] = inverting_gradients(
            model,
            w0,
            target,
            steps=config.ig_steps,
            lr=config.ig_lr,
            tv_weight=config.tv_weight,
            **attack,
        )
        recon[f"dlg_{name}"] = dlg(model, w0, target, steps=config.dlg_steps, **attack)
        for att in ("ig", "dlg"):
            quality[f"{att}_{name}"] = reconstruction_quality(recon[f"{att}_{name}"], x)
        first = list(params_from_flat(model, target).items())[:2]  # first layer (weight, bias)
        if len(first) == 2 and first[0][1].dim() == 2 and first[1][1].dim() == 1:
            cands = analytic_fc_inversion(first[0][1], first[1][1])  # (H', D)
            flat_x = x.reshape(batch, -1)
            quality[f"analytic_{name}"] = per_truth_best(cands, flat_x)
            best = torch.cdist(flat_x, cands.clamp(0, 1)).argmin(1)  # (B,)
            recon[f"analytic_{name}"] = cands[best].clamp(0, 1).reshape(x.shape)
    quality["ig_tofu_to_proxy"] = float(best_match_mse(recon["ig_tofu"], proxy.x).mean())
    # Do the transmitted proxies themselves look like the private batch?
    quality["proxy_to_true"] = per_truth_best(
        proxy.x.reshape(len(proxy.x), -1), x.reshape(batch, -1)
    )
    return PrivacyRun(batch, x, proxy.x, recon, quality)
