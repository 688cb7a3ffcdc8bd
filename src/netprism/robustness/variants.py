"""Model variants of the TREND transferability study, built on the model registry.

Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble Design" (IEEE TAI
2023, arXiv 2008.01524).  The factors studied: architecture, initialisation (seed),
optimiser, input quantisation (1-8 bits, uniform binning), halftoning, and weight /
activation quantisation.  A :class:`VariantSpec` names one; :func:`build_variant` wraps a
registry model (``netprism.models.create_model``) with the input transform and the
normalisation (inside the model, so attacks work in [0, 1]); :func:`train_variant` fits it
with a :class:`~netprism.train.TrainConfig` recipe (default :func:`variant_config` for the
spec's optimiser).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netprism.core.seed import seed_everything
from netprism.models import create_model
from netprism.nn.quant import FULL_PRECISION, QuantAct, QuantConv2d, QuantLinear, check_bits
from netprism.robustness.adversarial import halftone, quantize_input
from netprism.train import TrainConfig, fit
from netprism.train.config import require_train_config

OPTIMIZER_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


class InputTransform(nn.Module):
    """TREND's input preprocessing: ``"none"``, ``"quant"`` (``bits`` 1..8) or ``"halftone"``.

    Examples
    --------
    >>> InputTransform("quant", bits=1)(torch.tensor([[0.2, 0.8]])).tolist()
    [[0.25, 0.75]]
    """

    def __init__(self, kind: str = "none", *, bits: int = 8) -> None:
        super().__init__()
        if kind not in ("none", "quant", "halftone"):
            raise ValueError(f"input transform must be 'none', 'quant' or 'halftone', got {kind!r}")
        if kind == "quant" and (isinstance(bits, bool) or not 1 <= int(bits) <= 8):
            raise ValueError(f"input quantisation bits must be in 1..8, got {bits!r}")
        self.kind, self.bits = kind, int(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "quant":
            return quantize_input(x, self.bits)
        if self.kind == "halftone":
            return halftone(x)
        return x

    def extra_repr(self) -> str:
        return f"{self.kind}" + (f", bits={self.bits}" if self.kind == "quant" else "")


class PreprocessedModel(nn.Module):
    """``model(normalise(transform(x)))``: a registry model that takes [0, 1] inputs.

    Shapes: ``(N, *input_shape)`` -> logits ``(N, K)``.
    """

    def __init__(
        self, model: nn.Module, transform: nn.Module, mean: float = 0.5, std: float = 0.5
    ) -> None:
        super().__init__()
        self.transform, self.model = transform, model
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((self.transform(x) - self.mean) / self.std)


@dataclass(frozen=True)
class VariantSpec:
    """One candidate model of the study.

    Attributes
    ----------
    arch : str
        A registry model name ("mlp", "lenet", ...).
    input : {"none", "quant", "halftone"}
    input_bits : int
        Bits of input quantisation (1..8) when ``input="quant"``.
    weight_bits, act_bits : int
        1..16 or 32 (full precision); quantised models swap Linear / Conv2d for the
        ``netprism.nn.quant`` layers and ReLU for :class:`~netprism.nn.quant.QuantAct`.
    optimizer : {"sgd", "adam", "adamw"}
    init_seed : int
        Seed of the weight initialisation (the data order uses the training seed).
    model_kwargs : tuple of (key, value)
        Extra registry arguments, e.g. ``(("hidden", (64, 32)),)``.
    """

    arch: str = "mlp"
    input: str = "none"
    input_bits: int = 8
    weight_bits: int = FULL_PRECISION
    act_bits: int = FULL_PRECISION
    optimizer: str = "sgd"
    init_seed: int = 0
    model_kwargs: tuple[tuple[str, Any], ...] = ()

    def replace(self, **changes: Any) -> VariantSpec:
        return dataclasses.replace(self, **changes)


def quantize_layers(model: nn.Module, weight_bits: int, act_bits: int) -> nn.Module:
    """Swap every Linear / Conv2d for its quantised twin (same weights) and every ReLU for a
    ``QuantAct(act_bits)``, in place; returns ``model``.

    Examples
    --------
    >>> m = quantize_layers(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), 2, 2)
    >>> type(m[0]).__name__, type(m[1]).__name__
    ('QuantLinear', 'QuantAct')
    """
    check_bits(weight_bits, "weight_bits")
    check_bits(act_bits, "act_bits")
    for name, child in list(model.named_children()):
        new: nn.Module | None = None
        if isinstance(child, nn.Linear) and weight_bits != FULL_PRECISION:
            new = QuantLinear(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                weight_bits=weight_bits,
            )
        elif isinstance(child, nn.Conv2d) and weight_bits != FULL_PRECISION:
            new = QuantConv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                stride=child.stride,
                padding=child.padding,
                bias=child.bias is not None,
                weight_bits=weight_bits,
            )
        elif isinstance(child, nn.ReLU) and act_bits != FULL_PRECISION:
            new = QuantAct(act_bits)
        if new is None:
            quantize_layers(child, weight_bits, act_bits)
            continue
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            new.load_state_dict(child.state_dict())
        setattr(model, name, new)
    return model


def build_variant(
    spec: VariantSpec, *, input_shape: tuple[int, ...], num_classes: int
) -> PreprocessedModel:
    """The (untrained) model of ``spec``: registry model + quantisation + input transform.

    Examples
    --------
    >>> m = build_variant(VariantSpec(input="quant", input_bits=2), input_shape=(1, 8, 8),
    ...                   num_classes=10)
    >>> m(torch.rand(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    """
    if spec.optimizer not in OPTIMIZER_LR:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_LR)}, got {spec.optimizer!r}")
    seed_everything(spec.init_seed)
    net = create_model(
        spec.arch, input_shape=input_shape, num_classes=num_classes, **dict(spec.model_kwargs)
    )
    if spec.weight_bits != FULL_PRECISION or spec.act_bits != FULL_PRECISION:
        quantize_layers(net, spec.weight_bits, spec.act_bits)
    transform = InputTransform(spec.input, bits=spec.input_bits)
    return PreprocessedModel(net, transform)


def variant_config(
    optimizer: str = "sgd",
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> TrainConfig:
    """The default recipe of :func:`train_variant` for a spec's ``optimizer``, as in TREND.

    ``lr`` defaults to 0.05 for SGD (momentum 0.9, weight decay 5e-4) and 1e-3 for Adam /
    AdamW (no weight decay); cosine decay, no progress bar.  ``seed`` fixes the data order.

    Examples
    --------
    >>> cfg = variant_config("adam", epochs=4)
    >>> cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.scheduler, cfg.device
    ('adam', 0.001, 0.0, 'cosine', 'cpu')
    """
    if optimizer not in OPTIMIZER_LR:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_LR)}, got {optimizer!r}")
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr if lr is not None else OPTIMIZER_LR[optimizer],
        optimizer=optimizer,
        weight_decay=5e-4 if optimizer == "sgd" else 0.0,
        seed=seed,
        device=str(device),
        progress=False,
    )


def train_variant(
    spec: VariantSpec,
    train: tuple[torch.Tensor, torch.Tensor],
    *,
    num_classes: int,
    config: TrainConfig | None = None,
) -> PreprocessedModel:
    """Build and fit ``spec`` on ``train = (x (N, ...), y (N,))``; returns it in eval mode.

    Parameters
    ----------
    spec : VariantSpec
        The variant; its ``init_seed`` fixes the initialisation (on the CPU, so every device
        starts from the same weights) and its ``optimizer`` is a factor of the study.
    train : (x (N, ...), y (N,)) tensors
    num_classes : int
        ``K``, the logits per sample.
    config : TrainConfig, optional
        The training recipe; default ``variant_config(spec.optimizer)``.  Every field is
        honoured by :func:`netprism.train.fit` (``seed``: the data order; ``device``: where
        it trains and stays, "auto" meaning CUDA when present; attack it with inputs there).
        ``config.optimizer`` must be ``spec.optimizer`` (ValueError otherwise): the spec
        names the optimiser.

    Examples
    --------
    >>> x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    >>> m = train_variant(VariantSpec(), (x, y), num_classes=10, config=variant_config(epochs=1))
    >>> m(x).shape
    torch.Size([16, 10])
    """
    config = require_train_config(config, variant_config(spec.optimizer), "train_variant", {})
    if config.optimizer != spec.optimizer:
        raise ValueError(
            f"train_variant: TrainConfig.optimizer={config.optimizer!r} differs from the "
            f"spec's optimizer {spec.optimizer!r}; use variant_config(spec.optimizer, ...)"
        )
    x, y = train
    model = build_variant(spec, input_shape=tuple(x.shape[1:]), num_classes=num_classes)
    fit(model, (x, y), config)
    return model.eval()
