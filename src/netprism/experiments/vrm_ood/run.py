"""The work of the ``vrm_ood`` experiment: the in-distribution data and OoD sets (built once),
then per seed the plain, mixup and VRM classifiers and every detector's scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from netprism.data import TensorDataset, load_dataset
from netprism.data import ood as ood_sets
from netprism.experiments.vrm_ood.config import FAR_SETS, MODELS, NEAR_SETS, VRMOODConfig
from netprism.experiments.vrm_ood.records import SeedRun
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


def validate(config: VRMOODConfig) -> None:
    """Model, OoD sets, classes, inferred settings and targets, checked before any work."""
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


def measure(config: VRMOODConfig) -> list[SeedRun]:
    """The data and OoD sets once, then every seed on them."""
    data = _data(config)
    return [one_seed(config, seed, data) for seed in config.seeds]


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


def one_seed(config: VRMOODConfig, seed: int, data: _Data) -> SeedRun:
    """Plain, mixup and VRM classifiers on one seed; every detector scored on every set."""
    device = resolve_device(config.device)
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
