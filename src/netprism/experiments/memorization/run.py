"""The measuring of the ``memorization`` experiment: the settings of every training run, the
runs (shared out over torchrun's ranks and worker processes) and the Feldman-Zhang estimate."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from netprism.core.dist import rank_world
from netprism.experiments.base import spread_over_ranks
from netprism.experiments.memorization.config import MemorizationConfig
from netprism.experiments.memorization.records import FZEstimate, MemorizationRuns
from netprism.experiments.memorization.training_runs import (
    Setting,
    model_factory,
    prepared_dataset,
    run_settings,
)
from netprism.memorization.feldman_zhang import feldman_zhang_scores
from netprism.memorization.names import DEFAULT_EVERY, DEFAULT_H, DEFAULT_N_PROBES
from netprism.memorization.scores import default_config


def resolved(config: MemorizationConfig) -> MemorizationConfig:
    """``config`` with a single ``dataset`` expanded; raises ``ValueError`` on per-dataset
    tuples of the wrong length, no seeds or no noise rate."""
    if config.dataset:
        firsts = {f: getattr(config, f)[:1] for f in ("epochs", "every", "lrs", "targets")}
        config = dataclasses.replace(config, datasets=(config.dataset,), **firsts)
    n = len(config.datasets)
    for field in ("epochs", "every", "lrs", "targets"):
        if len(getattr(config, field)) != n:
            raise ValueError(
                f"{field} must have one value per dataset {config.datasets}, "
                f"got {getattr(config, field)}"
            )
    if config.seeds < 1 or not config.noise_rates:
        raise ValueError("need seeds >= 1 and at least one noise rate")
    return config


def _n_jobs(config: MemorizationConfig) -> int:
    return config.n_jobs if config.n_jobs > 0 else max(1, min(os.cpu_count() or 1, 4))


def _settings(config: MemorizationConfig) -> list[Setting]:
    """Noise runs on every dataset, duplicate runs and clean (Feldman-Zhang) runs on the first:
    with the experiment's curvature settings, and again at the library defaults (fz_cost)."""
    base: dict[str, Any] = dict(
        model=config.model,
        hidden=config.hidden,
        n_probes=config.n_probes,
        h=config.h,
        data_dir=config.data_dir,
        device=config.device,
    )
    out = []
    top = max(config.noise_rates)
    for d, name in enumerate(config.datasets):
        recipe: dict[str, Any] = dict(
            base, epochs=config.epochs[d], every=config.every[d], lr=config.lrs[d]
        )
        for rate in config.noise_rates:
            for s in range(config.seeds):
                out.append(
                    Setting(
                        name,
                        "noise",
                        rate,
                        config.seed + s,
                        **recipe,
                        cleanlab_epochs=config.cleanlab_epochs,
                        keep_scores=(s == 0 and rate == top),
                    )
                )
    first: dict[str, Any] = dict(
        base, epochs=config.epochs[0], every=config.every[0], lr=config.lrs[0]
    )
    for kind in config.duplicate_kinds:
        for wd in config.duplicate_weight_decays:
            out.append(
                Setting(
                    config.datasets[0],
                    kind,
                    config.duplicates,
                    config.seed,
                    **first,
                    weight_decay=wd,
                )
            )
    if config.fz_models:
        fz_recipe: dict[str, Any] = dict(
            first, hidden=config.fz_hidden, epochs=config.fz_epochs, every=1
        )
        default_recipe = dict(
            fz_recipe, h=DEFAULT_H, n_probes=DEFAULT_N_PROBES, every=DEFAULT_EVERY,
            recipe="library_default",
        )  # fmt: skip
        for recipe in (fz_recipe, default_recipe):
            for s in range(config.seeds):
                out.append(
                    Setting(
                        config.datasets[0], "none", 0.0, config.seed + s, **recipe,
                        keep_scores=True,
                    )
                )  # fmt: skip
    if config.export_csv:
        out.append(Setting(config.datasets[0], "none", 0.0, config.seed, **first, keep_scores=True))
    return out


def measure(config: MemorizationConfig) -> MemorizationRuns:
    """Every setting's run (setting ``i`` on rank ``i % world_size``), then the Feldman-Zhang
    estimate (its models spread over the ranks likewise)."""
    settings = _settings(config)
    runs = spread_over_ranks(
        settings, lambda mine: run_settings(mine, _n_jobs(config), progress=config.progress)
    )
    return MemorizationRuns(runs, _feldman_zhang(config))


def _feldman_zhang(config: MemorizationConfig) -> FZEstimate | None:
    if not config.fz_models:
        return None
    name = config.datasets[0]
    ds = prepared_dataset(name, config.data_dir, config.seed)
    setting = Setting(
        name,
        "none",
        0.0,
        config.seed,
        config.model,
        config.fz_hidden,
        config.fz_epochs,
        1,
        config.lrs[0],
    )
    train_cfg = dataclasses.replace(
        default_config(config.fz_epochs, device=config.device), lr=config.lrs[0], progress=False
    )
    result = feldman_zhang_scores(
        model_factory(setting, ds),
        ds,
        n_models=config.fz_models,
        config=train_cfg,
        seed=config.seed,
        n_jobs=_n_jobs(config),
        progress=config.progress,
    )
    # core-seconds count every worker of every rank the subset models were spread over
    return FZEstimate(result, n_jobs=_n_jobs(config) * rank_world()[1])
