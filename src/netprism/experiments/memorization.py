"""``memorization``: Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss
Function Around Samples", ICML 2024 (arXiv 2307.05831).

Planted symmetric label noise and conflicting duplicates are detected by epoch-averaged
input-loss curvature and by every peer computed from the same training runs (CSL loss,
in-confidence, AUM, forgetting, cartography, entropy) plus cleanlab's confident learning; the
curvature scores of clean data are compared with a Feldman-Zhang subsampling estimate.  Targets
come from a small-scale calibration run before the claims were fixed.

Under ``torchrun`` the training runs are shared out over the ranks and the Feldman-Zhang
models spread over them (model ``m`` on rank ``m % world_size``); results equal a
single-process run.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netprism.core.dist import rank_world
from netprism.core.seed import torch_threads
from netprism.experiments._memorization_claims import claims_and_metrics
from netprism.experiments._memorization_figures import audit_csv, make_figures
from netprism.experiments._memorization_runs import (
    Setting,
    model_factory,
    prepared_dataset,
    run_settings,
)
from netprism.experiments.base import Result, register_experiment, spread_over_ranks
from netprism.io import atomic_write_text


@dataclass(frozen=True)
class MemorizationConfig:
    """Config of the ``memorization`` experiment (defaults = small scale).

    Per-dataset tuples (``epochs``, ``every``, ``lrs``, ``targets``) align with ``datasets``.
    """

    datasets: tuple[str, ...] = ("digits", "mnist1d")
    dataset: str = ""  # a single dataset replacing ``datasets`` (e.g. your cifar10)
    noise_rates: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)
    seeds: int = 3
    model: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    epochs: tuple[int, ...] = (100, 60)
    every: tuple[int, ...] = (1, 2)
    lrs: tuple[float, ...] = (3e-3, 2e-3)
    targets: tuple[float, ...] = (0.95, 0.80)
    n_probes: int = 10
    h: float = 1e-3
    duplicates: int = 30
    duplicate_kinds: tuple[str, ...] = ("dup_exact", "dup_noise", "dup_shift")
    duplicate_weight_decays: tuple[float, ...] = (0.0, 5e-4)
    fz_models: int = 200
    fz_hidden: tuple[int, ...] = (128,)
    fz_epochs: int = 30
    cleanlab_epochs: int = 30
    n_jobs: int = 0  # 0: min(cores, 4) worker processes
    threads: int = 1  # torch threads per process (0: torch default)
    device: str = "auto"  # training and scoring ("auto": CUDA when present)
    data_dir: str | None = None
    export_csv: bool = False
    progress: bool = True
    seed: int = 0


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "datasets": ("digits",),
        "noise_rates": (0.1,),
        "seeds": 1,
        "hidden": (64,),
        "epochs": (6,),
        "every": (2,),
        "lrs": (3e-3,),
        "targets": (0.95,),
        "n_probes": 2,
        "duplicates": 10,
        "duplicate_kinds": ("dup_exact",),
        "duplicate_weight_decays": (0.0,),
        "fz_models": 6,
        "fz_hidden": (32,),
        "fz_epochs": 3,
        "cleanlab_epochs": 2,
        "n_jobs": 1,
    },
    "small": {},
    "full": {
        "datasets": ("cifar10",),
        "model": "resnet18",
        "epochs": (200,),
        "every": (4,),
        "lrs": (1e-3,),
        "targets": (0.80,),
        "fz_models": 0,
        "cleanlab_epochs": 50,
        "noise_rates": (0.02, 0.10),
        "duplicate_kinds": ("dup_exact",),
        "seeds": 1,
    },
}


@register_experiment(
    "memorization",
    config=MemorizationConfig,
    scales=SCALES,
    demo=True,
    paper="Garg, Ravikumar, Roy: Memorization through the lens of curvature "
    "(ICML 2024, arXiv 2307.05831)",
)
def run(config: MemorizationConfig, *, out_dir: Path | None = None) -> Result:
    """Run the label-noise, duplicate and Feldman-Zhang studies and judge the seven claims."""
    config = _resolved(config)
    settings = _settings(config)
    with torch_threads(config.threads):  # tiny models: 1 thread per run, runs in parallel
        # under torchrun: setting i runs on rank i % world_size, the FZ models likewise
        runs = spread_over_ranks(
            settings, lambda mine: run_settings(mine, _n_jobs(config), progress=config.progress)
        )
        fz = _feldman_zhang(config)
    claims, metrics, baselines = claims_and_metrics(config, runs, fz)
    figures: list[str] = []
    if out_dir is not None:
        tables = [
            metrics.pop("auroc_table"),
            metrics.pop("duplicates_table", ""),
            metrics.pop("estimated_set_table", ""),
        ]
        atomic_write_text(out_dir / "auroc_tables.md", "\n\n".join(t for t in tables if t) + "\n")
        metrics["tables"] = "auroc_tables.md (mean ± std over seeds)"
        figures = make_figures(config, runs, fz, out_dir)
        if config.export_csv:
            figures_csv = audit_csv(runs, out_dir)
            metrics["export_csv"] = figures_csv
    return Result(
        name="memorization",
        config=dataclasses.asdict(config),
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        seed=config.seed,
    )


def _resolved(config: MemorizationConfig) -> MemorizationConfig:
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
    """Noise runs on every dataset, duplicate runs and clean (Feldman-Zhang) runs on the first."""
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
        for s in range(config.seeds):
            out.append(
                Setting(
                    config.datasets[0], "none", 0.0, config.seed + s, **fz_recipe, keep_scores=True
                )
            )
    if config.export_csv:
        out.append(Setting(config.datasets[0], "none", 0.0, config.seed, **first, keep_scores=True))
    return out


def _feldman_zhang(config: MemorizationConfig) -> Any:
    if not config.fz_models:
        return None
    from netprism.memorization.feldman_zhang import feldman_zhang_scores
    from netprism.memorization.scores import default_config

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
    result.n_jobs = _n_jobs(config) * rank_world()[1]  # type: ignore[attr-defined]
    return result
