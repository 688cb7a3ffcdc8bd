"""VRM training: ERM, intra-class mixup and VRM's auxiliary class on the engine.

Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection", 2020, arXiv 2012.08398; the detectors, and which parts of the
recipe are inferred, are in :mod:`netprism.robustness.ood` (which re-exports this module's
public names).

Every trainer takes the training recipe as a :class:`~netprism.train.TrainConfig` (default
:func:`vrm_config`: Adam, constant learning rate) and the method's settings as
:class:`VRMSettings` (mixup ``alpha``, the auxiliary class's ``noise_*`` / ``aux_*``,
``clip``).  Training runs on :func:`netprism.train.fit`: the mixup and noise draws happen in an
``on_batch_start`` hook that replaces each batch by its mixed inputs and soft targets, and
``loss_fn`` is the per-sample soft-target cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.outputs import as_logits
from netprism.core.seed import make_generator
from netprism.core.validation import check_fraction
from netprism.data.base import as_tensors
from netprism.train import Batch, Callback, TrainConfig, TrainContext, fit
from netprism.train.config import NO_CHECKPOINTS, require_train_config

__all__ = [
    "VRMSettings",
    "intra_class_mixup",
    "noise_mixup",
    "train_mixup",
    "train_plain",
    "train_vrm",
    "vrm_config",
]


def vrm_config(
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> TrainConfig:
    """The default recipe of :func:`train_plain`, :func:`train_mixup` and :func:`train_vrm`:
    Adam at a constant learning rate, no progress bar.

    Examples
    --------
    >>> cfg = vrm_config(epochs=5)
    >>> cfg.optimizer, cfg.scheduler, cfg.lr, cfg.batch_size, cfg.weight_decay
    ('adam', 'none', 0.001, 32, 0.0)
    """
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimizer="adam",
        scheduler="none",
        seed=seed,
        device=str(device),
        progress=False,
    )


@dataclass(frozen=True)
class VRMSettings:
    """The method settings of :func:`train_mixup` (``alpha``) and :func:`train_vrm` (all).

    ``alpha`` is Beta(alpha, alpha) of the intra-class mixup; the ``noise_*`` / ``aux_*``
    fields and ``clip`` are VRM's auxiliary class (inferred, see the module docstring).
    The training recipe (epochs, optimiser, ...) is a separate
    :class:`~netprism.train.TrainConfig` (:func:`vrm_config`).
    """

    alpha: float = 1.0
    noise_std: float = 1.0
    noise_alpha: float = 1.0
    aux_target: str = "hard"
    aux_lambda_max: float = 0.5
    noise_fraction: float = 0.5
    clip: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        for key in ("alpha", "noise_std", "noise_alpha"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)!r}")
        if self.aux_target not in ("hard", "soft"):
            raise ValueError(f"aux_target must be 'hard' or 'soft', got {self.aux_target!r}")
        check_fraction(self.aux_lambda_max, "aux_lambda_max", high_inclusive=True)
        check_fraction(self.noise_fraction, "noise_fraction", high_inclusive=True)


def intra_class_mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix every sample with a random partner **of the same class** in the batch.

    ``x`` (B, ...), ``y`` (B,) -> mixed inputs (B, ...) and their (unchanged-class) labels.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [10.0], [11.0]]); y = torch.tensor([0, 0, 1, 1])
    >>> xm, ym = intra_class_mixup(x, y, 1.0, torch.Generator().manual_seed(0))
    >>> bool(((xm[ym == 0] <= 1) & (xm[ym == 1] >= 10)).all())
    True
    """
    a, mixed = _intra_class_mixup(x, y, alpha, gen)
    return mixed, y[a]


def _intra_class_mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`intra_class_mixup` returning the rows ``a`` (B,) whose labels the mix keeps."""
    # Two random orders that both sort by class: a[i] and b[i] share a class.
    a = torch.argsort(y + 0.5 * torch.rand(len(y), generator=gen))
    b = torch.argsort(y + 0.5 * torch.rand(len(y), generator=gen))
    lam = torch.distributions.Beta(alpha, alpha).sample((len(y),))
    lam = lam.view(-1, *([1] * (x.ndim - 1)))  # (B, 1, ...)
    return a, lam * x[a] + (1 - lam) * x[b]


def noise_mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    settings: VRMSettings,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """VRM's auxiliary samples: ``x`` (M, ...) mixed with Gaussian noise -> inputs (M, ...)
    and soft targets (M, K + 1) over the K classes and the auxiliary class ``K``."""
    beta = torch.distributions.Beta(settings.noise_alpha, settings.noise_alpha)
    lam = beta.sample((len(y),))  # (M,)
    if settings.aux_target == "hard":
        lam = settings.aux_lambda_max * lam
    noise = settings.noise_std * torch.randn(x.shape, generator=gen)
    mixed = (
        lam.view(-1, *([1] * (x.ndim - 1))) * x + (1 - lam.view(-1, *([1] * (x.ndim - 1)))) * noise
    )
    if settings.clip is not None:
        mixed = mixed.clamp(*settings.clip)
    target = torch.zeros(len(y), num_classes + 1)
    if settings.aux_target == "hard":
        target[:, num_classes] = 1.0
    else:
        target[torch.arange(len(y)), y] = lam
        target[:, num_classes] = 1 - lam
    return mixed, target


class _MixupBatches(Callback):
    """The engine hook that turns each batch of dataset indices into the recipe's batch.

    The draws are made on the CPU in the order the recipe always made them (intra-class
    partners from ``gen``, then ``lam`` from the global generator; for VRM the noise-mixup
    ``lam`` then the noise from ``gen``), so a seed gives the same batches on every device.
    The replacement batch holds the mixed inputs, soft targets (B', width) and, as ``index``,
    the dataset sample each row was made from (its label's sample for a mixup row; VRM's
    auxiliary rows come from the batch's first ``m`` samples).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        settings: VRMSettings,
        mode: str,
        gen: torch.Generator,
    ) -> None:
        self.x, self.y, self.settings, self.mode, self.gen = x, y, settings, mode, gen
        self.k = int(y.max()) + 1
        self.width = self.k + 1 if mode == "vrm" else self.k

    def on_batch_start(self, ctx: TrainContext, batch: Batch) -> Batch:
        idx = batch.index
        assert idx is not None  # in-memory tensors always carry their index
        xb, yb, rows = self.x[idx], self.y[idx], idx
        if self.mode in ("mixup", "vrm"):
            a, xb = _intra_class_mixup(xb, yb, self.settings.alpha, self.gen)
            yb, rows = yb[a], idx[a]
        target = F.one_hot(yb, self.width).float()  # (B, width)
        if self.mode == "vrm":
            m = max(1, round(self.settings.noise_fraction * len(yb)))
            xa, ta = noise_mixup(self.x[idx][:m], self.y[idx][:m], self.k, self.settings, self.gen)
            xb, target = torch.cat([xb, xa]), torch.cat([target, ta])  # (B + m, ...)
            rows = torch.cat([rows, idx[:m]])
        return Batch(xb.to(ctx.device), target.to(ctx.device), rows)


def _soft_cross_entropy(width: int, mode: str) -> Callable[[Any, Batch], torch.Tensor]:
    """``loss_fn`` of the engine: ``-sum_k t_k log softmax(z)_k`` per sample, (B,)."""

    def loss_fn(output: Any, batch: Batch) -> torch.Tensor:
        logits = as_logits(output)
        if logits.shape[1] != width:
            raise ValueError(f"{mode} training needs {width} outputs, got {logits.shape[1]}")
        return -(batch.y * F.log_softmax(logits, dim=1)).sum(dim=1)

    return loss_fn


def _train(
    model: nn.Module, data: Any, config: Any, settings: Any, mode: str, owner: str
) -> nn.Module:
    config = require_train_config(config, vrm_config(), owner, _UNSUPPORTED)
    if settings is None:
        settings = VRMSettings()
    if not isinstance(settings, VRMSettings):
        raise TypeError(
            f"{owner} takes settings as a VRMSettings or None, got {type(settings).__name__}"
        )
    x, y = as_tensors(data)
    x, y = x.cpu(), y.cpu()  # the draws index them on the CPU; fit moves each batch
    # One CPU generator draws the batch order and the mixup partners and noise; the Beta draws
    # use the global generator, which fit seeds with config.seed before any of them.
    gen = make_generator(config.seed)
    hook = _MixupBatches(x, y, settings, mode, gen)
    fit(
        model,
        (x, y),
        config,
        callbacks=[hook],
        loss_fn=_soft_cross_entropy(hook.width, mode),
        order=lambda epoch: torch.randperm(len(y), generator=gen),
        distributed=False,  # one process draws the whole batch stream
    )
    return model.eval()


_UNSUPPORTED = {
    **NO_CHECKPOINTS,
    "label_smoothing": (0.0, "the targets are the method's soft targets"),
}


def train_plain(model: nn.Module, data: Any, config: TrainConfig | None = None) -> nn.Module:
    """Empirical risk minimisation with the same optimiser and batches as the VRM variants.

    Parameters
    ----------
    model : nn.Module
        Maps (B, *input_shape) to K logits; trained in place and returned in eval mode.
    data : (x, y) tensors, TensorDataset, Dataset or DataLoader
        Training data, labels in [0, K).
    config : TrainConfig, optional
        The training recipe, as for :func:`train_vrm`; default :func:`vrm_config`.
    """
    return _train(model, data, config, None, "plain", "train_plain")


def train_mixup(
    model: nn.Module,
    data: Any,
    config: TrainConfig | None = None,
    settings: VRMSettings | None = None,
) -> nn.Module:
    """Intra-class mixup only: "VRM applied to the baselines" (K outputs).

    ``config`` as for :func:`train_vrm` (default :func:`vrm_config`); of ``settings`` only
    ``alpha`` is used.
    """
    return _train(model, data, config, settings, "mixup", "train_mixup")


def train_vrm(
    model: nn.Module,
    data: Any,
    config: TrainConfig | None = None,
    settings: VRMSettings | None = None,
) -> nn.Module:
    """VRM: intra-class mixup on the K classes plus noise mixup for the auxiliary class.

    Parameters
    ----------
    model : nn.Module
        Maps (B, *input_shape) to **K + 1** logits; trained in place and returned in eval mode.
    data : (x, y) tensors, TensorDataset, Dataset or DataLoader
        In-distribution training data, labels in [0, K).
    config : TrainConfig, optional
        The training recipe; default :func:`vrm_config`.  Honoured: every field (``device``:
        where it trains, "auto" meaning CUDA when present) but ``label_smoothing`` (the
        targets are the method's) and ``checkpoint_dir`` / ``resume`` (the mixup stream is
        not checkpointed), which raise a ValueError when set.
    settings : VRMSettings, optional
        The mixup and auxiliary-class settings; default ``VRMSettings()``.

    Examples
    --------
    >>> from netprism.robustness.ood import VRMDetector
    >>> x, y = torch.rand(20, 4), torch.arange(20) % 2
    >>> net = train_vrm(nn.Linear(4, 3), (x, y), vrm_config(epochs=1, device="cpu"))
    >>> VRMDetector().fit(net).score(x).shape
    torch.Size([20])
    """
    return _train(model, data, config, settings, "vrm", "train_vrm")
