"""Transferability of adversarial examples: counts, the fitted eps-curve, the TREND metric.

Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble Design" (IEEE TAI
2023, arXiv 2008.01524), ``trans.py`` and ``fit_calc_TM.py`` of the official code.

For a source ``s`` and a target ``t`` and attacks crafted on ``s``:

- the *common* samples are those both classify correctly when clean (``N_common``);
- ``N_{s->s}``: common samples the attack fools on the source (white-box success);
- ``N_{s->t}``: common samples it fools on both the source and the target (transferred).

The transfer fraction is ``N_{s->t} / N_common``.  Over an eps sweep, each count is fitted
with ``N(eps) = a (1 - exp(b eps))`` (``b < 0``) and the metric is the intended ratio

    TM_{s->t}(eps) = N_{s->t}(eps) / N_{s->s}(eps).

The released script drops the parentheses around the denominator and computes
``a_st (1 - e^{b_st eps}) / a_ss * (1 - e^{b_ss eps})``; ``formula="official"`` reproduces it
for comparison only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import OptimizeWarning, curve_fit
from torch import nn

from netprism.robustness.adversarial import pgd, predict

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class TransferCounts:
    """Counts of one (source, target) pair at one eps."""

    n_common: int
    n_source: int  # N_{s->s}: common samples that fool the source
    n_transfer: int  # N_{s->t}: common samples that fool source and target

    @property
    def fraction(self) -> float:
        """``n_transfer / n_common`` (nan when nothing is common)."""
        return self.n_transfer / self.n_common if self.n_common else float("nan")


def transfer_counts(
    y: torch.Tensor,
    source_clean: torch.Tensor,
    target_clean: torch.Tensor,
    source_adv: torch.Tensor,
    target_adv: torch.Tensor,
) -> TransferCounts:
    """Transfer counts from predictions (all (N,) class indices; adversarials made on the source).

    Examples
    --------
    >>> y = torch.tensor([0, 1, 2, 3])
    >>> c = transfer_counts(y, torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 2, 3]),
    ...                     torch.tensor([1, 0, 2, 3]), torch.tensor([1, 1, 2, 3]))
    >>> c.n_common, c.n_source, c.n_transfer, c.fraction
    (3, 2, 1, 0.3333333333333333)
    """
    preds = (source_clean, target_clean, source_adv, target_adv)
    if any(p.shape != y.shape for p in preds) or y.ndim != 1:
        shapes = [tuple(p.shape) for p in preds]
        raise ValueError(f"predictions must all have y's shape {tuple(y.shape)}, got {shapes}")
    common = (source_clean == y) & (target_clean == y)
    fools_source = common & (source_adv != y)
    return TransferCounts(
        n_common=int(common.sum()),
        n_source=int(fools_source.sum()),
        n_transfer=int((fools_source & (target_adv != y)).sum()),
    )


def saturating_curve(eps: np.ndarray | float, a: float, b: float) -> np.ndarray | float:
    """``a (1 - exp(b eps))``, the model of a count against attack strength."""
    return a * (1.0 - np.exp(b * np.asarray(eps, dtype=float)))


def fit_transfer_curve(
    eps: Sequence[float] | np.ndarray, counts: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Least-squares fit of ``N(eps) = a (1 - exp(b eps))`` with ``a >= 0``, ``b <= 0``.

    Returns ``(a, b)``; all-zero counts give ``(0.0, 0.0)``.

    Examples
    --------
    >>> e = np.linspace(0.02, 0.3, 8)
    >>> a, b = fit_transfer_curve(e, saturating_curve(e, 120.0, -9.0))
    >>> round(a, 3), round(b, 3)
    (120.0, -9.0)
    """
    e, n = np.asarray(eps, dtype=float), np.asarray(counts, dtype=float)
    if e.shape != n.shape or e.ndim != 1 or len(e) < 2:
        raise ValueError(f"need >= 2 matching eps and counts, got shapes {e.shape} and {n.shape}")
    if not (np.isfinite(e).all() and np.isfinite(n).all()) or (e < 0).any():
        raise ValueError("eps must be finite and >= 0 and counts finite")
    if not n.any():
        return 0.0, 0.0
    # Start curve_fit from the best point of a grid over b (a in closed form for each b), so
    # the fit neither diverges nor stalls on counts that saturate at the first eps.
    scale = 1.0 / float(e[e > 0].min()) if (e > 0).any() else 1.0
    grid = -np.logspace(-3, 2, 200) * scale  # (G,) candidate b < 0
    f = 1.0 - np.exp(grid[:, None] * e[None, :])  # (G, E)
    a_grid = (f @ n) / np.maximum((f * f).sum(axis=1), 1e-300)  # (G,)
    err = ((a_grid[:, None] * f - n[None, :]) ** 2).sum(axis=1)
    k = int(err.argmin())
    a0, b0 = float(a_grid[k]), float(grid[k])
    if k in (0, len(grid) - 1):  # saturated (or flat) counts: the grid edge is the answer
        return a0, b0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # covariance is not used
            (a, b), _ = curve_fit(
                saturating_curve,
                e,
                n,
                p0=(a0, b0),
                jac=_curve_jac,
                bounds=([0.0, float(grid[-1])], [np.inf, 0.0]),
                max_nfev=2000,
            )
    except RuntimeError:  # no convergence: keep the grid optimum
        return a0, b0
    return float(a), float(b)


def _curve_jac(eps: np.ndarray, a: float, b: float) -> np.ndarray:
    """(E, 2) derivatives of :func:`saturating_curve` with respect to ``a`` and ``b``."""
    ex = np.exp(b * eps)
    return np.stack([1.0 - ex, -a * eps * ex], axis=1)


def transferability_metric(
    fit_st: tuple[float, float],
    fit_ss: tuple[float, float],
    eps: float,
    *,
    formula: str = "intended",
) -> float:
    """TM_{s->t}(eps) from the fitted curves ``(a, b)`` of N_{s->t} and N_{s->s}.

    ``formula="intended"``: ``N_st(eps) / N_ss(eps)`` (nan when ``N_ss(eps) = 0``).
    ``formula="official"``: the released script's ``N_st(eps) / a_ss * (1 - exp(b_ss eps))``.

    Examples
    --------
    >>> transferability_metric((50.0, -10.0), (100.0, -10.0), 0.1)
    0.5
    """
    n_st = float(saturating_curve(eps, *fit_st))
    a_ss, b_ss = fit_ss
    if formula == "official":
        return n_st / a_ss * (1.0 - math.exp(b_ss * eps)) if a_ss else float("nan")
    if formula != "intended":
        raise ValueError(f"formula must be 'intended' or 'official', got {formula!r}")
    n_ss = float(saturating_curve(eps, *fit_ss))
    return n_st / n_ss if n_ss > 0 else float("nan")


def tm_from_counts(
    eps: Sequence[float], counts: np.ndarray, eval_eps: float, *, formula: str = "intended"
) -> np.ndarray:
    """The TM matrix ``(M, M)`` read at ``eval_eps`` off curves fitted to the sweep's counts
    ``(M, M, E, 3)`` (:attr:`TransferResult.counts`): another reading eps needs no new attack.
    The diagonal is 1."""
    m = counts.shape[0]
    tm = np.ones((m, m))
    for s in range(m):
        for t in range(m):
            if s != t:
                fit_st = fit_transfer_curve(eps, counts[s, t, :, 2])
                fit_ss = fit_transfer_curve(eps, counts[s, t, :, 1])
                tm[s, t] = transferability_metric(fit_st, fit_ss, eval_eps, formula=formula)
    return tm


def pgd_attack(steps: int = 20, seed: int = 0) -> Attack:
    """An :data:`Attack` ``(model, x, y, eps) -> x_adv``: L-inf PGD, step eps/4, random start."""

    def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return pgd(model, x, y, eps=eps, steps=steps, seed=seed)

    return attack


@dataclass
class TransferResult:
    """A transferability study over a pool of ``M`` models and ``E`` eps values.

    Attributes
    ----------
    names : list of str (M,)
    eps : list of float (E,)
    eval_eps : float
    tm : ndarray (M, M)
        ``tm[s, t]`` = TM_{s->t}(eval_eps) (intended ratio); the diagonal is 1.
    tm_official : ndarray (M, M)
        The released script's formula, for comparison.
    fraction : ndarray (M, M, E)
        ``N_{s->t} / N_common`` per eps.
    counts : ndarray (M, M, E, 3)
        ``(n_common, n_source, n_transfer)``.
    success : ndarray (M, E)
        White-box success of each source on its own correct samples.
    """

    names: list[str]
    eps: list[float]
    eval_eps: float
    tm: np.ndarray
    tm_official: np.ndarray
    fraction: np.ndarray
    counts: np.ndarray
    success: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def pair(self, source: str, target: str) -> float:
        """TM of the named pair."""
        return float(self.tm[self.names.index(source), self.names.index(target)])


def transferability_matrix(
    models: Mapping[str, nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float],
    eval_eps: float,
    attack: Attack | None = None,
) -> TransferResult:
    """Pairwise TM over a pool: attack each source at every eps once, evaluate every target.

    Parameters
    ----------
    models : dict of str -> nn.Module
        Each maps inputs (N, ...) in [0, 1] to logits (N, K); in eval mode.
    x : Tensor (N, ...)
        Inputs in [0, 1].
    y : LongTensor (N,)
    eps : sequence of float
        The sweep (>= 2 values) used for the fits.
    eval_eps : float
        Where TM is read off the fitted curves (TREND: 8/255).
    attack : Attack
        Default :func:`pgd_attack` ``(steps=20)``.

    Returns
    -------
    TransferResult
    """
    if len(models) < 2:
        raise ValueError(f"a transferability matrix needs >= 2 models, got {len(models)}")
    if len(eps) < 2 or any(e <= 0 for e in eps):
        raise ValueError(f"eps needs >= 2 positive values for the fit, got {list(eps)}")
    attack = attack or pgd_attack()
    names, ms = list(models), list(models.values())
    clean = [predict(m, x) for m in ms]
    M, E = len(ms), len(eps)
    counts = np.zeros((M, M, E, 3), dtype=np.int64)
    success = np.zeros((M, E))
    for s, src in enumerate(ms):
        for k, e in enumerate(eps):
            x_adv = attack(src, x, y, float(e))
            adv = [predict(m, x_adv) for m in ms]
            ok = clean[s] == y
            success[s, k] = float((ok & (adv[s] != y)).sum()) / max(int(ok.sum()), 1)
            for t in range(M):
                c = transfer_counts(y, clean[s], clean[t], adv[s], adv[t])
                counts[s, t, k] = (c.n_common, c.n_source, c.n_transfer)
    tm = tm_from_counts(eps, counts, eval_eps)
    tm_off = tm_from_counts(eps, counts, eval_eps, formula="official")
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = counts[..., 2] / counts[..., 0]
    return TransferResult(
        names, [float(e) for e in eps], eval_eps, tm, tm_off, fraction, counts, success
    )
