"""A two-component Gaussian mixture on a 1-D score vector, fitted by EM.

Used to turn a ranking into a set: which samples belong to the high-score component.  The
practice of splitting per-sample training losses with a two-component mixture comes from the
noisy-label literature (Arazo et al., "Unsupervised Label Noise Modeling and Loss Correction",
ICML 2019; Li, Socher & Hoi, "DivideMix", ICLR 2020): clean samples form a tight low-loss mode,
mislabeled ones a broad high-loss mode.  As in DivideMix the scores are min-max scaled to
[0, 1] and each component's variance is floored (``var_floor``), so a near-constant mode cannot
collapse to zero width.  torch only, float64, deterministic (initialised by 1-D 2-means
started at the extremes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["TwoComponentMixture", "fit_two_component_mixture"]


@dataclass(frozen=True)
class TwoComponentMixture:
    """A fitted mixture, in the original units of the scores.

    Attributes
    ----------
    weights, means, variances : Tensor (2,), float64
        Component 0 has the lower mean.
    posterior_high : Tensor (N,), float64
        Each sample's posterior probability of the high-mean component.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether the log-likelihood gain fell below the tolerance.
    """

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    posterior_high: torch.Tensor
    n_iter: int
    converged: bool


def fit_two_component_mixture(
    scores: Any, *, max_iter: int = 200, tol: float = 1e-8, var_floor: float = 5e-4
) -> TwoComponentMixture:
    """Fit a two-component 1-D Gaussian mixture to ``scores`` by expectation-maximisation.

    Parameters
    ----------
    scores : array-like (N,)
        Finite values, ``N >= 2``.
    max_iter : int
    tol : float
        Stop when the mean log-likelihood improves by less than this.
    var_floor : float
        Smallest component variance, on the min-max scaled scores.

    Returns
    -------
    TwoComponentMixture

    Examples
    --------
    >>> x = torch.cat([torch.zeros(90), torch.full((10,), 5.0)])
    >>> fit = fit_two_component_mixture(x)
    >>> int((fit.posterior_high > 0.5).sum()), [round(m) for m in fit.means.tolist()]
    (10, [0, 5])
    """
    x = torch.as_tensor(scores).double().flatten()
    if len(x) < 2 or not bool(torch.isfinite(x).all()):
        raise ValueError(f"scores must be >= 2 finite values, got shape {tuple(x.shape)}")
    low, span = x.min(), x.max() - x.min()
    if float(span) == 0.0:  # one value: everything is one component
        zeros = torch.zeros(len(x), dtype=torch.float64)
        return TwoComponentMixture(
            torch.tensor([1.0, 0.0]).double(), torch.stack([low, low]),
            torch.zeros(2).double(), zeros, 0, True,
        )  # fmt: skip
    z = (x - low) / span
    weights, means, variances = _m_step(z, _two_means(z), var_floor)
    previous, converged, n_iter = -math.inf, False, 0
    while n_iter < max_iter:
        n_iter += 1
        log_joint = _log_joint(z, weights, means, variances)  # (N, 2)
        log_like = torch.logsumexp(log_joint, dim=1)
        resp = (log_joint - log_like.unsqueeze(1)).exp()
        weights, means, variances = _m_step(z, resp, var_floor)
        current = float(log_like.mean())
        if current - previous < tol:
            converged = True
            break
        previous = current
    if means[0] > means[1]:
        weights, means, variances = weights.flip(0), means.flip(0), variances.flip(0)
    log_joint = _log_joint(z, weights, means, variances)
    posterior = (log_joint[:, 1] - torch.logsumexp(log_joint, dim=1)).exp()
    return TwoComponentMixture(
        weights, low + span * means, variances * span**2, posterior, n_iter, converged
    )


def _log_joint(
    z: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> torch.Tensor:
    """``log w_k + log N(z | mu_k, var_k)``, shape (N, 2)."""
    diff = z.unsqueeze(1) - means
    return weights.clamp_min(1e-300).log() - 0.5 * (
        math.log(2 * math.pi) + variances.log() + diff**2 / variances
    )


def _two_means(z: torch.Tensor, n_iter: int = 50) -> torch.Tensor:
    """Hard responsibilities (N, 2) of 1-D 2-means started at the extremes (0 and 1)."""
    centres = torch.tensor([0.0, 1.0]).double()
    for _ in range(n_iter):
        high = (z - centres[1]).abs() < (z - centres[0]).abs()
        new = torch.stack([z[~high].mean(), z[high].mean()])  # both non-empty: 0 and 1 in z
        if torch.equal(new, centres):
            break
        centres = new
    return torch.stack([~high, high], dim=1).double()


def _m_step(
    z: torch.Tensor, resp: torch.Tensor, var_floor: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mass = resp.sum(0).clamp_min(1e-12)  # (2,)
    means = (resp * z.unsqueeze(1)).sum(0) / mass
    variances = (resp * (z.unsqueeze(1) - means) ** 2).sum(0) / mass
    return mass / len(z), means, variances.clamp_min(var_floor)
