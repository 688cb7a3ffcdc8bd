"""Lightweight OoD detectors: VRM's auxiliary class next to MSP, max-logit, energy, ODIN and
Mahalanobis, with their training helpers and a cost account.

Ravikumar, Kodge, Garg & Roy, "Exploring Vicinal Risk Minimization for Lightweight
Out-of-Distribution Detection", 2020, arXiv 2012.08398.  Baselines: MSP (Hendrycks & Gimpel,
ICLR 2017), max-logit (Hendrycks et al. 2022), energy (Liu et al., NeurIPS 2020), ODIN (Liang,
Li & Srikant, ICLR 2018), Mahalanobis (Lee, Lee, Lee & Shin, NeurIPS 2018).

Every detector follows one interface: ``fit(model, in_data=None)`` returns ``self``,
``score(x)`` returns ``(N,)`` scores where **higher means more OoD** (pytorch-ood's convention).

What the paper states (abstract): VRM (mixup) smooths class boundaries and improves existing
detectors; the authors' detector adds one auxiliary "OoD" class (K+1 outputs) trained with
mixup in two ways, intra-class mixup and mixup with Gaussian noise.  **What is inferred** (the
exact recipe is not public, so these are our choices):

- intra-class mixup ``x = lam x_a + (1 - lam) x_b`` with ``y_a == y_b``, ``lam ~ Beta(a, a)``,
  hard target ``y_a``; the partner is drawn from the same class within the mini-batch;
- auxiliary class, variant ``aux_target="hard"`` (A): ``x = lam x + (1 - lam) n``,
  ``n ~ N(0, noise_std^2 I)``, clipped to ``clip``, target = class ``K``; ``lam`` is drawn from
  ``aux_lambda_max * Beta(a, a)`` so an auxiliary input is at least half noise (our choice);
- variant ``aux_target="soft"`` (B): the same input with ``lam ~ Beta(a, a)`` and the soft
  target ``lam onehot(y) + (1 - lam) onehot(K)``;
- a ``noise_fraction`` of each batch is added as auxiliary samples; loss = cross-entropy over
  K + 1 outputs; score = softmax probability of class K (``score_mode="aux"``) or
  ``1 - max_{k<K} p_k`` (``"max_in"``);
- Mahalanobis: class means and a tied (biased, pseudo-inverted) covariance per layer; the
  per-layer distance to the closest class is divided by ``D`` and summed over layers instead
  of Lee et al.'s input preprocessing + logistic-regression combiner (which needs OoD data).

Training (:mod:`netprism.robustness.vrm_train`, re-exported here: :func:`train_plain`,
:func:`train_mixup`, :func:`train_vrm`) runs on the engine with a
:class:`~netprism.train.TrainConfig` recipe (default :func:`vrm_config`) and the method's
:class:`VRMSettings`.  Scoring sends each batch to the model's device and returns CPU scores.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.capture import capture, last_linear_name
from netprism.core.validation import NotFittedError, check_positive_int
from netprism.data.base import as_tensors
from netprism.robustness.vrm_train import (
    VRMSettings,
    intra_class_mixup,
    noise_mixup,
    train_mixup,
    train_plain,
    train_vrm,
    vrm_config,
)

__all__ = [
    "DETECTORS",
    "ODIN",
    "Energy",
    "Mahalanobis",
    "MaxLogit",
    "MSP",
    "OODDetector",
    "VRMDetector",
    "VRMSettings",
    "class_means_and_tied_cov",
    "intra_class_mixup",
    "min_mahalanobis",
    "noise_mixup",
    "train_mixup",
    "train_plain",
    "train_vrm",
    "vrm_config",
]


# ----------------------------------------------------------------------------- detectors


class OODDetector:
    """Base detector: ``fit(model, in_data)`` then ``score(x)`` (higher = more OoD)."""

    name = "base"

    def __init__(self, *, batch_size: int = 512) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")

    def fit(self, model: nn.Module, in_data: Any = None) -> OODDetector:
        """Remember ``model`` (and learn statistics of ``in_data`` where needed)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model_ = model
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """OoD scores of inputs ``x`` (N, *input_shape) -> (N,) float32, batch by batch."""
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(model) first")
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
            raise ValueError(f"x must be a non-empty (N, ...) tensor, got {_describe(x)}")
        was_training = self.model_.training
        self.model_.eval()
        device = _model_device(self.model_)
        try:  # batches go to the model's device; the scores come back to the CPU
            parts = [self._score_batch(xb.to(device)).cpu() for xb in x.split(self.batch_size)]
        finally:
            self.model_.train(was_training)
        return torch.cat(parts).float()

    def _score_batch(self, xb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._from_logits(self.model_(xb))

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stored_tensors(self) -> list[torch.Tensor]:
        """Statistics the detector keeps beside the model (what it costs in memory)."""
        return []


def _describe(x: Any) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return torch.device("cpu") if param is None else param.device


class MSP(OODDetector):
    """Maximum softmax probability: score ``-max_k softmax(f(x))_k``."""

    name = "msp"

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.softmax(dim=1).max(dim=1).values


class MaxLogit(OODDetector):
    """Maximum logit: score ``-max_k f(x)_k``."""

    name = "maxlogit"

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return -logits.max(dim=1).values


class Energy(OODDetector):
    """Free energy: score ``-T logsumexp(f(x) / T)``."""

    name = "energy"

    def __init__(self, *, temperature: float = 1.0, batch_size: int = 512) -> None:
        super().__init__(batch_size=batch_size)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return -self.temperature * torch.logsumexp(logits / self.temperature, dim=1)


class ODIN(OODDetector):
    """ODIN: temperature scaling and an input step that raises the top softmax score.

    ``x' = x - eps * sign(grad_x [-log S_yhat(x; T)])`` (one forward and one backward pass),
    then score ``-max_k softmax(f(x') / T)_k`` (a second forward pass).
    """

    name = "odin"

    def __init__(
        self, *, temperature: float = 1000.0, epsilon: float = 0.002, batch_size: int = 512
    ) -> None:
        super().__init__(batch_size=batch_size)
        if not temperature > 0 or not epsilon >= 0:
            raise ValueError(
                f"temperature must be > 0 and epsilon >= 0, got {temperature!r}, {epsilon!r}"
            )
        self.temperature, self.epsilon = float(temperature), float(epsilon)

    def _score_batch(self, xb: torch.Tensor) -> torch.Tensor:
        x = xb.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            log_p = F.log_softmax(self.model_(x) / self.temperature, dim=1)  # (B, K)
            loss = -log_p.max(dim=1).values.sum()
            (grad,) = torch.autograd.grad(loss, x)
        x_step = x.detach() - self.epsilon * grad.sign()
        with torch.no_grad():
            probs = F.softmax(self.model_(x_step) / self.temperature, dim=1)
        return -probs.max(dim=1).values


class VRMDetector(OODDetector):
    """VRM's auxiliary-class detector on a (K+1)-way classifier trained by :func:`train_vrm`.

    ``score_mode="aux"``: ``softmax(f(x))_K``; ``"max_in"``: ``1 - max_{k<K} softmax_k``.
    """

    name = "vrm"

    def __init__(self, *, score_mode: str = "aux", batch_size: int = 512) -> None:
        super().__init__(batch_size=batch_size)
        if score_mode not in ("aux", "max_in"):
            raise ValueError(f"score_mode must be 'aux' or 'max_in', got {score_mode!r}")
        self.score_mode = score_mode

    def _from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(dim=1)  # (B, K + 1), the last column is the auxiliary class
        return probs[:, -1] if self.score_mode == "aux" else 1 - probs[:, :-1].max(dim=1).values


class Mahalanobis(OODDetector):
    """Class means and a tied covariance of chosen layers' inputs (Lee et al. 2018).

    Parameters
    ----------
    layers : str or sequence of str, optional
        Layers whose **inputs** are the features (one row per sample, e.g. ``"head"`` for the
        penultimate features, ``("fc2", "head")`` for two layers).  Default: the last Linear.

    Score: ``sum_l min_k (f_l - mu_lk)^T P_l (f_l - mu_lk) / D_l`` with ``P_l`` the
    pseudo-inverse of the tied covariance ``(1/N) sum_i (f_li - mu_l,y_i)(...)^T``.
    Learned: ``means_[l]`` (K, D_l), ``precisions_[l]`` (D_l, D_l), ``layers_``.
    """

    name = "mahalanobis"

    def __init__(self, *, layers: str | tuple[str, ...] | None = None, batch_size: int = 512):
        super().__init__(batch_size=batch_size)
        self.layers = (layers,) if isinstance(layers, str) else layers

    def fit(self, model: nn.Module, in_data: Any = None) -> Mahalanobis:
        """Class means and tied covariance of ``in_data`` ((x, y), Dataset or DataLoader)."""
        super().fit(model)
        if in_data is None:
            raise ValueError("Mahalanobis needs in-distribution data: fit(model, (x, y))")
        x, y = as_tensors(in_data)
        self.layers_ = tuple(self.layers) if self.layers else (last_linear_name(model),)
        feats = self._features(x)
        self.means_: dict[str, torch.Tensor] = {}
        self.precisions_: dict[str, torch.Tensor] = {}
        for name, f in feats.items():
            means, cov = class_means_and_tied_cov(f.double(), y)
            # statistics in float64, stored in the features' dtype (float32 for most models)
            self.means_[name] = means.to(f.dtype)
            self.precisions_[name] = torch.linalg.pinv(cov, hermitian=True).to(f.dtype)
        return self

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = capture(self.model_, list(self.layers_), x, batch_size=self.batch_size)
        assert rows is not None
        for name, r in rows.items():
            if len(r) != len(x):
                raise ValueError(
                    f"Mahalanobis needs one feature row per sample, but layer {name!r} gave "
                    f"{len(r)} rows for {len(x)} inputs; choose Linear layers"
                )
        return rows

    def _score_batch(self, xb: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(xb), dtype=torch.float64)
        for name, f in self._features(xb).items():
            total += min_mahalanobis(f, self.means_[name], self.precisions_[name]) / f.shape[1]
        return total

    def stored_tensors(self) -> list[torch.Tensor]:
        if not hasattr(self, "means_"):
            return []
        return [t for n in self.layers_ for t in (self.means_[n], self.precisions_[n])]


def class_means_and_tied_cov(f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means (K, D) and the tied covariance (D, D) of features ``f`` (N, D), labels (N,).

    Classes without samples are rejected.  The covariance is biased (divides by ``N``).

    Examples
    --------
    >>> f = torch.tensor([[0.0], [2.0], [10.0], [12.0]]); y = torch.tensor([0, 0, 1, 1])
    >>> means, cov = class_means_and_tied_cov(f, y)
    >>> means.flatten().tolist(), cov.item()
    ([1.0, 11.0], 1.0)
    """
    y = y.long()
    k = int(y.max()) + 1
    counts = torch.bincount(y, minlength=k)
    if bool((counts == 0).any()):
        raise ValueError(f"every class in [0, {k}) needs samples, got counts {counts.tolist()}")
    means = torch.zeros(k, f.shape[1], dtype=f.dtype).index_add_(0, y, f) / counts[:, None]
    centred = f - means[y]  # (N, D)
    return means, centred.T @ centred / len(f)


def min_mahalanobis(f: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """``min_k (f - mu_k)^T P (f - mu_k)`` for features (N, D), means (K, D), P (D, D) -> (N,)."""
    diff = f[:, None, :] - means[None]  # (N, K, D)
    dist = torch.einsum("nkd,de,nke->nk", diff, precision, diff)  # (N, K)
    return dist.min(dim=1).values


DETECTORS: dict[str, type[OODDetector]] = {
    d.name: d for d in (MSP, MaxLogit, Energy, ODIN, Mahalanobis, VRMDetector)
}
