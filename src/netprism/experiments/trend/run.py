"""The per-seed work of the ``trend`` experiment: the variant pool, the TM matrix, the
ensemble attacks with and without a dominating member, the TREND-selected and random
ensembles, and attack success against eps."""

from __future__ import annotations

from dataclasses import asdict
from itertools import combinations
from typing import Any

import numpy as np
import torch

from netprism.data import load_dataset
from netprism.experiments.base import check_faithful_seeds
from netprism.experiments.trend.config import (
    DOMINATION_ENSEMBLE,
    REQUIRED,
    TRENDExperimentConfig,
)
from netprism.experiments.trend.records import Candidate, SeedRun
from netprism.robustness.adversarial import fgsm, mi_fgsm, pgd, predict
from netprism.robustness.ensemble import (
    MODES,
    HardVoteEnsemble,
    ensemble_direction,
    ensemble_pgd,
    member_gradients,
    select_ensemble,
)
from netprism.robustness.transfer import pgd_attack, tm_from_counts, transferability_matrix
from netprism.robustness.variants import VariantSpec, train_variant, variant_config
from netprism.train import resolve_device


def _specs(config: TRENDExperimentConfig, seed: int) -> dict[str, VariantSpec]:
    mlp = VariantSpec(model_kwargs=(("hidden", tuple(config.hidden)),), init_seed=seed)
    every = {
        "fp": mlp,
        "fp_init": mlp.replace(init_seed=seed + 1000),
        "lenet": VariantSpec(arch="lenet", init_seed=seed),
        "adam": mlp.replace(optimizer="adam"),
        "q1": mlp.replace(input="quant", input_bits=1),
        "q2": mlp.replace(input="quant", input_bits=2),
        "q4": mlp.replace(input="quant", input_bits=4),
        "ht": mlp.replace(input="halftone"),
        "wq": mlp.replace(weight_bits=2, act_bits=2),
    }
    return {name: every[name] for name in config.pool}


def validate(config: TRENDExperimentConfig) -> None:
    """Pool, ensemble size, eps values and attack settings, checked before any work."""
    known = set(_specs(TRENDExperimentConfig(), 0))
    unknown = sorted(set(config.pool) - known)
    if unknown:
        raise ValueError(f"pool entries must be among {sorted(known)}, got unknown {unknown}")
    missing = [m for m in REQUIRED if m not in config.pool]
    if missing:
        raise ValueError(f"pool must contain {list(REQUIRED)} for the claims, missing {missing}")
    if not 2 <= config.ensemble_size <= len(config.pool):
        raise ValueError(
            f"ensemble_size must lie in [2, {len(config.pool)}] (the pool size), "
            f"got {config.ensemble_size}"
        )
    if len(config.eps) < 2 or any(not 0 < e <= 1 for e in config.eps):
        raise ValueError(f"eps needs >= 2 values in (0, 1] for the fit, got {config.eps!r}")
    for name in ("tm_eps", "attack_eps"):
        value = getattr(config, name)
        if not 0 < value <= 1:
            raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    if config.steps < 1 or config.n_eval < 2 or config.epochs < 1:
        raise ValueError(
            f"steps, epochs must be >= 1 and n_eval >= 2, got steps={config.steps}, "
            f"epochs={config.epochs}, n_eval={config.n_eval}"
        )
    if not config.domination_scale > 0:
        raise ValueError(f"domination_scale must be > 0, got {config.domination_scale!r}")
    check_faithful_seeds(
        config.faithful_seeds, config.seeds, "the twins attack each seed's own pool"
    )


def one_seed(config: TRENDExperimentConfig, seed: int) -> SeedRun:
    """Train the pool on one seed, then measure TM, the ensemble attacks and the curves."""
    device, twins = resolve_device(config.device), seed in config.faithful_seeds
    train = load_dataset(config.dataset, data_dir=config.data_dir, seed=seed)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir, seed=seed)
    x, y = test.x[: config.n_eval].to(device), test.y[: config.n_eval].to(device)
    K = train.num_classes
    models = {
        name: train_variant(
            spec,
            (train.x, train.y),
            num_classes=K,
            config=variant_config(
                spec.optimizer,
                epochs=config.epochs,
                batch_size=config.batch_size,
                seed=seed,
                device=str(device),
            ),
        )
        for name, spec in _specs(config, seed).items()
    }
    clean = {n: float((predict(m, x) == y).float().mean()) for n, m in models.items()}
    tm = transferability_matrix(
        models, x, y, eps=config.eps, eval_eps=config.tm_eps, attack=pgd_attack(config.steps, seed)
    )
    single = {
        n: float(
            (predict(m, pgd(m, x, y, eps=config.attack_eps, steps=config.steps, seed=seed)) == y)
            .float()
            .mean()
        )
        for n, m in models.items()
    }
    names = list(models)
    trend_idx = select_ensemble(tm.tm, config.ensemble_size)
    gen = np.random.default_rng(seed)
    candidates = {"TREND": [names[i] for i in trend_idx], "fp+q1+q2": list(DOMINATION_ENSEMBLE)}
    for r in range(config.n_random):
        pick = sorted(gen.choice(len(names), config.ensemble_size, replace=False).tolist())
        candidates[f"random{r}"] = [names[i] for i in pick]
    evaluated = {
        label: _candidate(models, members, x, y, config, seed, K)
        for label, members in candidates.items()
    }
    return SeedRun(
        seed=seed,
        names=names,
        clean=clean,
        tm=tm.tm.tolist(),
        tm_official=tm.tm_official.tolist(),
        fraction=np.nan_to_num(tm.fraction).tolist(),
        success=tm.success.tolist(),
        single_robust=single,
        candidates=evaluated,
        domination=_domination(models, list(DOMINATION_ENSEMBLE), x, y, config, seed, K),
        domination_faithful=_domination(
            models, candidates["TREND"], x, y, config, seed, K, config.domination_faithful_steps
        )
        if twins
        else {},
        sign_agreement=_sign_agreement(list(models.values()), x, y),
        design_faithful=_design_faithful(models, tm, x, y, config, seed, K) if twins else {},
        curves=_curves(models, candidates["TREND"], x, y, config, seed, K),
    )


def _success(ens: HardVoteEnsemble, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    ok = ens.predict(x) == y
    return float((ok & (ens.predict(x_adv) != y)).sum()) / max(int(ok.sum()), 1)


def _candidate(
    models: dict[str, Any],
    members: list[str],
    x: torch.Tensor,
    y: torch.Tensor,
    config: TRENDExperimentConfig,
    seed: int,
    K: int,
    steps: int | None = None,
) -> Candidate:
    ms = [models[n] for n in members]
    ens = HardVoteEnsemble(ms, K, seed=seed)
    robust = {}
    for mode in MODES:
        adv = ensemble_pgd(
            ms, x, y, eps=config.attack_eps, mode=mode, steps=steps or config.steps, seed=seed
        )
        robust[mode] = float((ens.predict(adv) == y).float().mean())
    return Candidate(members, float((ens.predict(x) == y).float().mean()), robust)


def _design_faithful(
    models: dict[str, Any],
    tm: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TRENDExperimentConfig,
    seed: int,
    K: int,
) -> dict[str, Any]:
    """TREND's design read at ``attack_eps`` (the same sweep, no new attack), every ensemble
    of ``ensemble_size`` attacked with ``design_faithful_steps``, single members likewise."""
    names, steps, eps = list(models), config.design_faithful_steps, config.attack_eps
    tm_attack = tm_from_counts(tm.eps, tm.counts, eps)
    chosen = [names[i] for i in select_ensemble(tm_attack, config.ensemble_size)]
    single = {
        n: float((predict(m, pgd(m, x, y, eps=eps, steps=steps, seed=seed)) == y).float().mean())
        for n, m in models.items()
    }
    ensembles = {
        "+".join(c): asdict(_candidate(models, list(c), x, y, config, seed, K, steps))
        for c in combinations(names, config.ensemble_size)
    }
    return {
        "tm": tm_attack.tolist(), "members": chosen, "steps": steps,
        "single_robust": single, "ensembles": ensembles,
    }  # fmt: skip


def _domination(
    models: dict[str, Any],
    members: list[str],
    x: torch.Tensor,
    y: torch.Tensor,
    config: TRENDExperimentConfig,
    seed: int,
    K: int,
    steps: int | None = None,
) -> dict[str, Any]:
    """Ensemble-attack success on ``members`` with no scaling and with each member's loss
    scaled; the A-GD step identity, D-AG's agreement with the scaled member, and the success
    of a PGD on each member alone against the ensemble (what a dominated D-AG becomes)."""
    steps = config.steps if steps is None else steps
    ms = [models[n] for n in members]
    ens = HardVoteEnsemble(ms, K, seed=seed)
    options: list[list[float] | None] = [None]
    for i in range(len(ms)):
        options.append([config.domination_scale if j == i else 1.0 for j in range(len(ms))])
    eps = config.attack_eps
    success = {
        mode: [
            _success(
                ens,
                x,
                ensemble_pgd(ms, x, y, eps=eps, mode=mode, steps=steps, seed=seed, loss_scales=sc),
                y,
            )
            for sc in options
        ]
        for mode in MODES
    }
    solo = [_success(ens, x, pgd(m, x, y, eps=eps, steps=steps, seed=seed), y) for m in ms]
    grads = member_gradients(ms, x, y)  # (M, N, ...)
    identical, agree_scaled, agree_plain = True, [], []
    for i in range(len(ms)):
        scaled = grads.clone()
        scaled[i] = scaled[i] * config.domination_scale
        identical &= torch.equal(
            ensemble_direction(grads, "sign_avg"), ensemble_direction(scaled, "sign_avg")
        )
        own = grads[i].sign()
        agree_scaled.append(float((ensemble_direction(scaled, "avg") == own).float().mean()))
        agree_plain.append(float((ensemble_direction(grads, "avg") == own).float().mean()))
    return {
        "members": list(members),
        "steps": steps,
        "success": success,  # mode -> [unscaled, member 0 scaled, member 1 scaled, ...]
        "solo_success": solo,  # PGD on member i alone, success against the ensemble
        "agd_step_identical": bool(identical),
        "dag_agree_scaled": agree_scaled,
        "dag_agree_unscaled": agree_plain,
    }


def _sign_agreement(ms: list[Any], x: torch.Tensor, y: torch.Tensor) -> list[list[float]]:
    """(M, M): the share of input-gradient components (clean samples) whose signs agree."""
    signs = member_gradients(ms, x, y).sign().flatten(1)  # (M, N * D)
    return [[float((a == b).float().mean()) for b in signs] for a in signs]


def _curves(
    models: dict[str, Any],
    trend_members: list[str],
    x: torch.Tensor,
    y: torch.Tensor,
    config: TRENDExperimentConfig,
    seed: int,
    K: int,
) -> dict[str, list[float]]:
    """Attack success against eps: FGSM / PGD / MI-FGSM on fp, D-AG / A-GD / U-GD on TREND."""
    fp = models["fp"]
    ok = predict(fp, x) == y

    def rate(x_adv: torch.Tensor) -> float:
        return float((ok & (predict(fp, x_adv) != y)).sum()) / max(int(ok.sum()), 1)

    curves: dict[str, list[float]] = {"FGSM": [], "PGD": [], "MI-FGSM": []}
    ms = [models[n] for n in trend_members]
    ens = HardVoteEnsemble(ms, K, seed=seed)
    for mode in MODES:
        curves[f"TREND ensemble {mode}"] = []
    for e in config.eps:
        curves["FGSM"].append(rate(fgsm(fp, x, y, eps=e)))
        curves["PGD"].append(rate(pgd(fp, x, y, eps=e, steps=config.steps, seed=seed)))
        curves["MI-FGSM"].append(rate(mi_fgsm(fp, x, y, eps=e, steps=config.steps)))
        for mode in MODES:
            adv = ensemble_pgd(ms, x, y, eps=e, mode=mode, steps=config.steps, seed=seed)
            curves[f"TREND ensemble {mode}"].append(_success(ens, x, adv, y))
    return curves
