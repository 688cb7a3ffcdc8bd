"""``vrm_ood``: VRM's auxiliary-class OoD detector against MSP, max-logit, energy, ODIN and
Mahalanobis, with the cost of each.

Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection", 2020, arXiv 2012.08398. The small-scale check: digits 0-4 in
distribution, far OoD = Gaussian and uniform noise, near OoD = digits 5-9 and transformed
digits. The paper's exact recipe is not public; what is inferred is listed in
:mod:`netprism.robustness.ood`.

Per seed, three classifiers start from the same initial body weights and see the same batches
(Adam): plain ERM (K outputs), intra-class mixup ("VRM applied to the baselines", K outputs)
and VRM (K + 1 outputs).  The baselines are scored on the plain and on the mixup classifier,
VRM on its own.  No threshold, epsilon or seed is chosen by looking at OoD data: ODIN uses
T = 1000 and a fixed epsilon.

Stated caveat: VRM's auxiliary class is trained on inputs mixed with N(0, 1) noise clipped to
[0, 1]; the far-OoD Gaussian set is N(0.5, 1) clipped to [0, 1] (the ODIN-era convention), so it
lies in the vicinity VRM was trained on -- which is the paper's point, and why beating plain
MSP there is expected.  Uniform noise and the near-OoD sets were never seen in training.

Device: ``--device`` (default ``auto``: CUDA when present) trains the three classifiers (on
the engine, :func:`netprism.train.fit`) and runs every detector's scoring there; the mixup and
noise draws are made on the CPU generator whatever the device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.core.seed import torch_threads
from netprism.data import TensorDataset, load_dataset
from netprism.data import ood as ood_sets
from netprism.experiments._vrm_ood_report import (
    FAR_SETS,
    SeedRun,
    claims_and_metrics,
    plot_all,
)
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
from netprism.io import atomic_write_text
from netprism.models import create_model
from netprism.robustness.ood import (
    MSP,
    ODIN,
    Energy,
    Mahalanobis,
    MaxLogit,
    OODDetector,
    VRMDetector,
    VRMSettings,
    train_mixup,
    train_plain,
    train_vrm,
    vrm_config,
)
from netprism.robustness.ood_metrics import measure_overhead, ood_metrics
from netprism.train import resolve_device

NEAR_SETS = ("held_out", "inverted", "shuffled", "rotated", "mnist1d")
MODELS = ("mlp", "lenet")


@dataclass(frozen=True)
class VRMOODConfig:
    """Config of the ``vrm_ood`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    in_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    model: str = "mlp"
    hidden: tuple[int, ...] = (128, 64)  # MLP only
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    alpha: float = 1.0  # Beta(alpha, alpha) of the intra-class mixup
    noise_std: float = 1.0  # inferred: n ~ N(0, noise_std^2 I) for the auxiliary class
    aux_target: str = "hard"  # inferred: "hard" (variant A) or "soft" (variant B)
    aux_lambda_max: float = 0.5  # inferred (variant A): at least half noise
    noise_fraction: float = 0.5  # auxiliary samples per real sample in a batch
    vrm_score: str = "aux"  # "aux" (p_K) or "max_in" (1 - max_{k<K} p_k)
    odin_temperature: float = 1000.0
    odin_epsilon: float = 0.002
    mahalanobis_layers: tuple[str, ...] = ("head",)  # inputs of these layers
    n_noise: int = 500
    near_sets: tuple[str, ...] = NEAR_SETS
    seeds: tuple[int, ...] = (0, 1, 2)
    auroc_target: float = 0.95
    fpr95_target: float = 0.2
    max_auroc_drop: float = 0.02
    timing_inputs: int = 1000
    data_dir: str | None = None
    threads: int = 1  # torch CPU threads; 1 is fastest for these tiny models
    device: str = "auto"  # training and scoring; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 2,
        "seeds": (0,),
        "n_noise": 60,
        "near_sets": ("held_out", "inverted"),
        "timing_inputs": 100,
    },
    "small": {},
    "full": {"seeds": tuple(range(5)), "epochs": 60},
}


@register_experiment(
    "vrm_ood",
    config=VRMOODConfig,
    scales=SCALES,
    demo=False,
    paper="Ravikumar, Kodge, Garg & Roy, Exploring Vicinal Risk Minimization for Lightweight "
    "Out-of-Distribution Detection (2020, arXiv 2012.08398)",
)
def run(config: VRMOODConfig, *, out_dir: Path | None = None) -> Result:
    """Train plain / mixup / VRM classifiers per seed, score every OoD set; claims, figures."""
    _validate(config)
    device = resolve_device(config.device)  # an unavailable device fails before any work
    with torch_threads(config.threads):
        data = _data(config)
        runs = [_one_seed(config, seed, data, device) for seed in config.seeds]
    claims, metrics, baselines = claims_and_metrics(runs, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(runs[0], Path(out_dir))
        _save_runs(runs, Path(out_dir))
    return seeded_result(
        "vrm_ood", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _validate(config: VRMOODConfig) -> None:
    check_seeds(config.seeds)
    if config.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {config.model!r}")
    unknown = [s for s in config.near_sets if s not in NEAR_SETS]
    if unknown:
        raise ValueError(f"near_sets must be a subset of {NEAR_SETS}, got unknown {unknown}")
    if len(config.in_classes) < 2 or len(set(config.in_classes)) != len(config.in_classes):
        raise ValueError(f"in_classes must name >= 2 distinct classes, got {config.in_classes!r}")
    if config.aux_target not in ("hard", "soft"):
        raise ValueError(f"aux_target must be 'hard' or 'soft', got {config.aux_target!r}")
    if config.vrm_score not in ("aux", "max_in"):
        raise ValueError(f"vrm_score must be 'aux' or 'max_in', got {config.vrm_score!r}")
    for key in ("auroc_target", "fpr95_target", "max_auroc_drop"):
        if not 0.0 <= getattr(config, key) <= 1.0:
            raise ValueError(f"{key} must lie in [0, 1], got {getattr(config, key)!r}")
    for key in ("n_noise", "timing_inputs", "epochs"):
        if not isinstance(getattr(config, key), int) or getattr(config, key) <= 0:
            raise ValueError(f"{key} must be a positive int, got {getattr(config, key)!r}")
    if not config.mahalanobis_layers:
        raise ValueError("mahalanobis_layers must name at least one layer, got ()")


@dataclass
class _Data:
    train: TensorDataset
    test: TensorDataset
    sets: dict[str, TensorDataset]


def _data(config: VRMOODConfig) -> _Data:
    """In-distribution train/test (relabelled) and every OoD set, shaped like the test set."""
    full_train = load_dataset(config.dataset, data_dir=config.data_dir)
    train, _ = ood_sets.held_out_classes(full_train, config.in_classes)
    full_test = load_dataset(config.dataset, split="test", data_dir=config.data_dir)
    test, held_out = ood_sets.held_out_classes(full_test, config.in_classes)
    builders = {
        "gaussian": lambda: ood_sets.gaussian_noise(test, config.n_noise, seed=1),
        "uniform": lambda: ood_sets.uniform_noise(test, config.n_noise, seed=2),
        "held_out": lambda: held_out,
        "inverted": lambda: ood_sets.inverted(test),
        "shuffled": lambda: ood_sets.shuffled_pixels(test, seed=3),
        "rotated": lambda: ood_sets.rotated(test),
        "mnist1d": lambda: ood_sets.other_dataset("mnist1d", test, n=config.n_noise, seed=4),
    }
    sets = {name: builders[name]() for name in (*FAR_SETS, *config.near_sets)}
    for ds in sets.values():
        ood_sets.check_same_input(ds, test)
    return _Data(train, test, sets)


def _model(config: VRMOODConfig, shape: tuple[int, ...], classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # the same body weights for the three recipes of a seed
    extra = {"hidden": config.hidden} if config.model == "mlp" else {}
    return create_model(config.model, input_shape=shape, num_classes=classes, **extra)


def _detectors(config: VRMOODConfig) -> dict[str, OODDetector]:
    return {
        "msp": MSP(),
        "maxlogit": MaxLogit(),
        "energy": Energy(),
        "odin": ODIN(temperature=config.odin_temperature, epsilon=config.odin_epsilon),
        "mahalanobis": Mahalanobis(layers=config.mahalanobis_layers),
    }


def _one_seed(config: VRMOODConfig, seed: int, data: _Data, device: torch.device) -> SeedRun:
    k, shape = data.train.num_classes, data.train.input_shape
    recipe = vrm_config(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        device=str(device),
    )
    settings = VRMSettings(
        alpha=config.alpha,
        noise_std=config.noise_std,
        aux_target=config.aux_target,
        aux_lambda_max=config.aux_lambda_max,
        noise_fraction=config.noise_fraction,
    )
    plain = train_plain(_model(config, shape, k, seed), data.train, recipe)
    mixup = train_mixup(_model(config, shape, k, seed), data.train, recipe, settings)
    vrm = train_vrm(_model(config, shape, k + 1, seed), data.train, recipe, settings)
    fitted: dict[str, OODDetector] = {}
    for prefix, model in (("", plain), ("mixup_", mixup)):
        for name, det in _detectors(config).items():
            fitted[prefix + name] = det.fit(model, data.train)
    fitted["vrm"] = VRMDetector(score_mode=config.vrm_score).fit(vrm)
    x_in = data.test.x
    scores = {name: det.score(x_in) for name, det in fitted.items()}
    out_scores = {
        (name, s): det.score(ds.x) for name, det in fitted.items() for s, ds in data.sets.items()
    }
    metrics = {key: ood_metrics(scores[key[0]], out).to_dict() for key, out in out_scores.items()}
    accuracy = {
        "plain": _accuracy(plain, data.test, k),
        "mixup": _accuracy(mixup, data.test, k),
        "vrm": _accuracy(vrm, data.test, k),
    }
    overhead = {}
    if seed == config.seeds[0]:
        for name in ("msp", "maxlogit", "energy", "odin", "mahalanobis", "vrm"):
            det = fitted[name]
            timed = measure_overhead(det, x_in, reference=plain, n_timed=config.timing_inputs)
            overhead[name] = timed.to_dict()
    modules = dict(plain.named_modules())
    maha_dims = [_in_width(modules[name]) for name in config.mahalanobis_layers]
    return SeedRun(
        seed, metrics, accuracy, overhead, scores, out_scores, _head_width(plain), k, maha_dims
    )


def _accuracy(model: nn.Module, test: TensorDataset, k: int) -> float:
    device = next(model.parameters()).device
    with torch.no_grad():
        pred = model(test.x.to(device))[:, :k].argmax(dim=1).cpu()  # VRM: the K real classes
    return float((pred == test.y).float().mean())


def _head_width(model: nn.Module) -> int:
    return _in_width([m for m in model.modules() if isinstance(m, nn.Linear)][-1])


def _in_width(layer: nn.Module) -> int:
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"mahalanobis_layers must name Linear layers, got {type(layer).__name__}")
    return int(layer.in_features)


def _save_runs(runs: list[SeedRun], out_dir: Path) -> None:
    """Every detector's metrics on every OoD set, per seed, and the overhead table."""
    data = {
        str(r.seed): {
            "accuracy": r.accuracy,
            "metrics": {f"{d}/{s}": m for (d, s), m in r.metrics.items()},
            "overhead": r.overhead,
        }
        for r in runs
    }
    atomic_write_text(out_dir / "ood_runs.json", json.dumps(data, indent=1))
