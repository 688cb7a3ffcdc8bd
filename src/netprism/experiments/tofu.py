"""``tofu``: TOFU's encoder fidelity, exact decode, uplink savings, privacy and robustness.

Garg, Nagaraj & Roy, "TOFU: Towards Obfuscated Federated Updates by Encoding Weight Updates
into Gradients from Proxy Data" (arXiv 2201.08494, IEEE Access 2024).  Small scale follows
our calibration: digits 8x8, 5 IID
clients, MLP 64-32-10 (2,410 parameters), 1 local epoch of SGD (lr 0.1, batch 32), 60 rounds;
TOFU with N = 8 proxies and a budgeted encoder (Adam, lr 0.1, 100 steps: 300 was too slow).

Measured per seed, from the same initial weights and partitions: FedAvg, TOFU-only, and the
hybrid (last ``full_rounds`` rounds full-precision); the fidelity sweep re-encodes FedAvg's
real updates of a few rounds with N in ``fidelity_proxies``; the privacy runs attack one
local SGD step on a true batch (B = ``attack_batch``, and B = 1, the paper's known failure)
at the initial weights with Inverting Gradients, DLG and the analytic FC inversion, against
the real and the TOFU-decoded update; the robustness run adds one malformed and one
sign-flipping client to FedAvg with the robust aggregator.

Decided up front: bytes are float32 payloads (no framing); the downlink is counted, full
precision unless ``downlink="tofu"``; the ``privacy`` claim uses Inverting Gradients' best-
match MSE ratio (DLG and the analytic control are reported next to it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.data.transforms import partition_clients
from netprism.experiments._tofu_report import PrivacyRun, SeedRuns, claims_and_metrics, plot_all
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
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
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.train import resolve_device

MALFORMED = ("nan", "wrong_shape", "huge_norm")


@dataclass(frozen=True)
class TOFUExperimentConfig:
    """Config of the ``tofu`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    n_clients: int = 5
    alpha: float | None = None  # None: IID clients; else Dirichlet(alpha) label skew
    hidden: tuple[int, ...] = (32,)
    rounds: int = 60
    full_rounds: int = 10  # hybrid: the last rounds send full-precision updates
    local_epochs: int = 1
    lr: float = 0.1
    batch_size: int = 32
    n_proxy: int = 8
    encoder_steps: int = 100
    encoder_lr: float = 0.1
    downlink: str = "full"  # or "tofu": the server encodes the aggregate too
    fidelity_proxies: tuple[int, ...] = (2, 8, 32)
    fidelity_rounds: tuple[int, ...] = (0, 20, 40)  # FedAvg rounds whose updates are re-encoded
    attack_batch: int = 4
    ig_steps: int = 500
    ig_lr: float = 0.1
    tv_weight: float = 1e-2
    dlg_steps: int = 30
    aggregator: str = "median"  # robust rule of the bad-client run
    malformed: str = "nan"  # the malformed client's fault: nan, wrong_shape or huge_norm
    max_norm: float = 1e3
    seeds: tuple[int, ...] = (0, 1, 2)
    min_fidelity: float = 0.8
    decode_tol: float = 1e-6
    min_comm_ratio: float = 2.0
    max_acc_gap: float = 3.0  # points, hybrid vs FedAvg
    min_mse_ratio: float = 3.0  # privacy: TOFU-attack MSE / real-attack MSE
    max_bad_gap: float = 2.0  # points, robust run with bad clients vs the clean run
    # Local training and test evaluation run here; the wire vectors, TOFU's encoder and the
    # attacks (optimizing inputs, not weights) stay on the CPU.
    device: str = "auto"
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "n_clients": 3,
        "rounds": 3,
        "full_rounds": 1,
        "encoder_steps": 10,
        "fidelity_proxies": (2, 8),
        "fidelity_rounds": (0,),
        "ig_steps": 20,
        "dlg_steps": 2,
        "seeds": (0,),
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "rounds": 100, "full_rounds": 10, "encoder_steps": 300},
}


@register_experiment(
    "tofu",
    config=TOFUExperimentConfig,
    scales=SCALES,
    demo=False,
    paper="Garg, Nagaraj & Roy, TOFU: Towards Obfuscated Federated Updates by Encoding Weight "
    "Updates into Gradients from Proxy Data (IEEE Access 2024, arXiv 2201.08494)",
)
def run(config: TOFUExperimentConfig, *, out_dir: Path | None = None) -> Result:
    """FedAvg, TOFU-only, hybrid, fidelity sweep, attacks and the bad-client run per seed."""
    _validate(config)
    fed_logger = logging.getLogger("netprism.federated")
    level = fed_logger.level
    fed_logger.setLevel(logging.ERROR)  # rejections are recorded per round in rounds.json
    try:
        with torch_threads(config.threads):
            runs = [_one_seed(config, seed) for seed in config.seeds]
    finally:
        fed_logger.setLevel(level)
    claims, metrics, baselines = claims_and_metrics(runs, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs, Path(out_dir))
        _save(runs, Path(out_dir))
    return seeded_result(
        "tofu", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: TOFUExperimentConfig) -> None:
    resolve_device(config.device)  # an unusable device fails before any work
    check_seeds(config.seeds)
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


def _one_seed(config: TOFUExperimentConfig, seed: int) -> SeedRuns:
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


def _save(runs: list[SeedRuns], out_dir: Path) -> None:
    """Every round log, fidelity sweep and attack quality per seed."""
    data = {
        str(r.seed): {
            "rounds": {name: log.to_dict() for name, log in r.logs.items()},
            "fidelity": {str(n): v for n, v in r.fidelity.items()},
            "privacy": {str(b): p.quality for b, p in r.privacy.items()},
            "n_params": r.n_params,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "tofu_runs.json", json.dumps(data, indent=1))
