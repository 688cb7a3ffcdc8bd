"""The per-seed work of the ``tofu`` experiment: FedAvg, TOFU-only and hybrid rounds, the
bad-client runs, the fidelity sweep and the gradient-inversion attacks on one seed."""

from __future__ import annotations

import logging
from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.data.transforms import partition_clients
from netprism.experiments.base import check_faithful_seeds
from netprism.experiments.tofu.config import MALFORMED, TOFUExperimentConfig
from netprism.experiments.tofu.privacy import privacy_faithful_runs, privacy_run
from netprism.experiments.tofu.records import PrivacyRun, SeedRuns
from netprism.federated.aggregate import AGGREGATORS
from netprism.federated.rounds import DOWNLINKS, EncoderConfig, local_config, run_rounds
from netprism.federated.tofu import encode_update, hybrid_schedule
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
    _validate_privacy_faithful(config)


def _validate_privacy_faithful(config: TOFUExperimentConfig) -> None:
    """The twin's sweep: K >= 1 increasing, with the claim's K; rounds that run, with 0; its
    seeds among ``seeds``."""
    check_faithful_seeds(
        config.faithful_seeds, config.seeds, "the twin attacks each seed's own FedAvg weights"
    )
    steps, rounds = list(config.privacy_local_steps), list(config.privacy_rounds)
    if not steps or steps[0] < 1 or steps != sorted(set(steps)):
        raise ValueError(
            f"privacy_local_steps must be strictly increasing and >= 1, got {tuple(steps)}"
        )
    if config.privacy_faithful_k not in steps:
        raise ValueError(
            f"privacy_faithful_k must be one of privacy_local_steps {tuple(steps)}, "
            f"got {config.privacy_faithful_k}"
        )
    if rounds != sorted(set(rounds)) or 0 not in rounds or rounds[-1] >= config.rounds:
        raise ValueError(
            "privacy_rounds must be strictly increasing, include 0 (where the claim is read) "
            f"and stay below rounds={config.rounds}, got {tuple(rounds)}"
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
    keep = sorted(
        {r for r in (*config.fidelity_rounds, *config.privacy_rounds) if r < config.rounds}
    )
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
    snapshots = logs["fedavg"].snapshots
    fidelity = _fidelity_sweep(
        config,
        model,
        {r: s for r, s in snapshots.items() if r in config.fidelity_rounds},
        train,
        seed,
    )
    privacy: dict[int, PrivacyRun] = {}
    for b in sorted({config.attack_batch, 1}):
        privacy[b] = privacy_run(config, model, clients[0], b, seed)
    faithful = {}
    if seed in config.faithful_seeds:
        weights = {r: snapshots[r][0] for r in config.privacy_rounds}
        faithful = privacy_faithful_runs(config, model, clients[0], weights, seed)
    return SeedRuns(
        seed, {k: v for k, v in logs.items()}, fidelity, privacy, n_params(model), faithful
    )


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
