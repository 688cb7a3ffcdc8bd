"""Operations on orthonormal bases: principal angles, residual energy, GPM's incremental
basis growth, and a scikit-learn style estimator over the subspace lens.

Saha, Garg, Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021 (arXiv
2103.09762), Eqs. 8-9 for :func:`incremental_basis`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from netprism.core.subspace import (
    Rule,
    StreamingCovariance,
    _as_rows,
    _check_rule,
    _check_threshold,
    _fix_signs,
)
from netprism.core.validation import NotFittedError


def _orthonormal(a: torch.Tensor, name: str) -> torch.Tensor:
    a = _as_rows(a, name)
    if a.shape[1] > a.shape[0]:
        raise ValueError(f"{name} must have at most D columns, got shape {tuple(a.shape)}")
    return torch.linalg.qr(a).Q  # (D, p)


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between span(A) and span(B).

    Parameters
    ----------
    A : Tensor (D, p), B : Tensor (D, q)
        Full column rank; orthonormalized here.

    Returns
    -------
    Tensor (min(p, q),) float64
        Cosines from the SVD of ``Qa^T Qb``; angles below 45 degrees use the sines (more
        accurate near 0).

    Examples
    --------
    >>> e = torch.eye(3)
    >>> principal_angles(e[:, :2], e[:, 1:]).tolist()
    [0.0, 1.5707963267948966]
    """
    qa, qb = _orthonormal(A, "A"), _orthonormal(B, "B")
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"A and B must share D, got {tuple(A.shape)} and {tuple(B.shape)}")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # symmetric; make qa the wider one so that q = min(p, q)
    cross = qa.T @ qb  # (p, q)
    cos = torch.linalg.svdvals(cross).clamp(0.0, 1.0)  # (q,) descending
    sin = torch.linalg.svdvals(qb - qa @ cross).flip(0).clamp(0.0, 1.0)  # (q,) ascending
    return torch.where(cos**2 > 0.5, torch.arcsin(sin), torch.arccos(cos))


def _basis_and_rows(
    basis: torch.Tensor, R: torch.Tensor, rows_are_samples: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    m = _as_rows(basis, "basis")
    rows = _as_rows(R, "R")
    rows = rows if rows_are_samples else rows.T
    if rows.shape[1] != m.shape[0]:
        raise ValueError(f"R rows have width {rows.shape[1]}, basis is {tuple(basis.shape)}")
    return m.to(rows.device), rows


def residual_energy(
    basis: torch.Tensor, R: torch.Tensor, *, rows_are_samples: bool = True
) -> float:
    """Fraction of R's energy outside span(basis): ``||R - R M M^T||_F^2 / ||R||_F^2``.

    ``basis`` (D, K) orthonormal; ``R`` (N, D) (or (D, N)).  0.0 for an all-zero R.  GPM's
    already-explained fraction of a new task is ``1 - residual_energy``.

    Examples
    --------
    >>> residual_energy(torch.eye(2)[:, :1], torch.tensor([[1.0, 1.0]]))
    0.5
    """
    m, rows = _basis_and_rows(basis, R, rows_are_samples)
    total = float((rows**2).sum())
    if total == 0.0:
        return 0.0
    return float(((rows - (rows @ m) @ m.T) ** 2).sum()) / total


def incremental_basis(
    old_basis: torch.Tensor,
    R: torch.Tensor,
    threshold: float,
    *,
    rows_are_samples: bool = True,
    reorthogonalize: bool = True,
) -> torch.Tensor:
    """GPM's basis update for a later task (Eqs. 8-9): the new columns to append.

    With total energy ``||R||^2``, residual ``R_hat = R - R M M^T`` and explained fraction
    ``a = 1 - ||R_hat||^2 / ||R||^2``, residual components ``sigma_hat_i^2 / ||R||^2``
    (denominator: the *total* energy) are added to ``a`` until ``a >= threshold``, as in the
    authors' loop.  Residual directions at round-off level (``sigma_hat <= max(N, D) * eps *
    ||R||_F``) are never added.  An empty ``old_basis`` (D, 0) gives the first-task
    basis under the ``"reach"`` rule.

    Parameters
    ----------
    old_basis : Tensor (D, K), orthonormal columns
    R : Tensor (N, D), or (D, N) with ``rows_are_samples=False``
    threshold : float in (0, 1]
    reorthogonalize : bool
        Project the new columns off ``old_basis`` once more and re-orthonormalize (QR).  GPM's
        code does not; orthogonality then holds only up to round-off.

    Returns
    -------
    Tensor (D, r) float64
        New orthonormal columns, ``0 <= r <= D - K``; (D, 0) when R is already explained.

    Examples
    --------
    >>> e = torch.eye(3)
    >>> incremental_basis(e[:, :1], e[:2] * 2.0, 0.99).T.tolist()
    [[0.0, 1.0, 0.0]]
    >>> incremental_basis(e[:, :1], e[:1], 0.99).shape
    torch.Size([3, 0])
    """
    threshold = _check_threshold(threshold)
    m, rows = _basis_and_rows(old_basis, R, rows_are_samples)
    d, k = m.shape
    total = float((rows**2).sum())
    if total == 0.0 or k >= d:
        return rows.new_zeros(d, 0)
    resid = rows - (rows @ m) @ m.T  # (N, D), R_hat in rows
    _, s, vh = torch.linalg.svd(resid, full_matrices=False)  # s (min(N, D),), vh (min, D)
    eps = torch.finfo(torch.promote_types(old_basis.dtype, R.dtype)).eps
    tol = max(rows.shape) * eps * math.sqrt(total)  # sqrt(total) = ||R||_F >= sigma_max(R)
    s = s[s > tol][: d - k]
    explained = 1.0 - float((resid**2).sum()) / total
    if explained >= threshold or s.numel() == 0:
        return rows.new_zeros(d, 0)
    cum = explained + (s**2).cumsum(0) / total  # (r_max,)
    r = min(int((cum < threshold).sum()) + 1, s.numel())
    new = vh[:r].T  # (D, r)
    if reorthogonalize:
        new = torch.linalg.qr(new - m @ (m.T @ new)).Q
    return _fix_signs(new)


def _batches(X: torch.Tensor | Iterable) -> Iterable[torch.Tensor]:
    if isinstance(X, torch.Tensor):
        return [X]
    return (b[0] if isinstance(b, (tuple, list)) else b for b in X)


class SubspaceEstimator:
    """Principal subspace of data under an energy threshold (scikit-learn contract).

    Parameters
    ----------
    threshold : float in (0, 1]
    rule : {"reach", "below"}
        See :func:`energy_rank`.
    centered : bool
        Subtract the mean (PCA) or not (GPM, utilized rank; the default).

    Attributes
    ----------
    basis_ : Tensor (D, K) float64
    spectrum_ : Tensor (K,) energies ``sigma^2`` of the kept directions
    n_components_ : int
    mean_ : Tensor (D,) or None (when not centered)
    subspace_ : Subspace
    n_features_in_ : int

    Using :meth:`transform` or :meth:`inverse_transform` before :meth:`fit` raises
    :class:`NotFittedError` (a ``ValueError``).

    Examples
    --------
    >>> x = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    >>> est = SubspaceEstimator(threshold=0.99).fit(x)
    >>> est.n_components_, torch.allclose(est.inverse_transform(est.transform(x)), x)
    (1, True)
    """

    def __init__(self, threshold: float = 0.99, rule: Rule = "reach", centered: bool = False):
        self.threshold = threshold
        self.rule = rule
        self.centered = centered

    def __repr__(self) -> str:
        return (
            f"SubspaceEstimator(threshold={self.threshold!r}, rule={self.rule!r}, "
            f"centered={self.centered!r})"
        )

    def fit(self, X: torch.Tensor | Iterable) -> SubspaceEstimator:
        """Fit on a tensor (N, D) or an iterable of batches (tensors or ``(x, ...)``)."""
        threshold = _check_threshold(self.threshold)
        _check_rule(self.rule)
        cov = StreamingCovariance()
        for batch in _batches(X):
            cov.update(batch)
        sub = cov.to_subspace(centered=self.centered, threshold=threshold, rule=self.rule)
        self.subspace_ = sub
        self.basis_, self.spectrum_, self.n_components_ = sub.basis, sub.spectrum, sub.rank
        self.mean_ = cov.mean if self.centered else None
        self.n_features_in_ = sub.dim
        return self

    def _fitted_basis(self) -> torch.Tensor:
        if not hasattr(self, "basis_"):
            raise NotFittedError(
                "SubspaceEstimator is not fitted yet: call fit(X) before transform or "
                "inverse_transform"
            )
        return self.basis_

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Coordinates (N, K) of rows X (N, D) in the basis, in X's float dtype."""
        basis = self._fitted_basis()
        x = _as_rows(X, "X", self.n_features_in_).to(basis.device)
        x = x - self.mean_ if self.mean_ is not None else x
        z = x @ basis
        return z.to(X.dtype) if X.is_floating_point() else z

    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        """Rows (N, D) from coordinates Z (N, K), in Z's float dtype."""
        basis = self._fitted_basis()
        x = _as_rows(Z, "Z", self.n_components_).to(basis.device) @ basis.T
        x = x + self.mean_ if self.mean_ is not None else x
        return x.to(Z.dtype) if Z.is_floating_point() else x
