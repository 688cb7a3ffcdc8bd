"""The subspace lens: streaming covariance, energy rank, subspaces and projections.

Which directions of its space does a layer's data occupy?  The rows of a representation
matrix ``R`` (N, D) -- one row per sample, token or conv patch, see
:mod:`netprism.core.capture` -- are accumulated batch by batch into the float64 scatter
``R^T R`` (D, D).  Its eigenvectors are the right singular vectors of ``R`` and its
eigenvalues the energies ``sigma_i^2``; an energy threshold picks how many to keep.

Papers
------
- GPM: Saha, Garg, Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021,
  arXiv 2103.09762.  Uncentered SVD of layer inputs; the energy criterion of Eq. 5 for the
  first task (:func:`energy_rank`, ``rule="below"`` matches the authors' code) and the
  residual rule of Eqs. 8-9 for later tasks (:func:`netprism.core.basis.incremental_basis`).
- Utilized rank: Garg, Koguchi, Verma, Ulbricht, "Revealing the Utilized Rank of Subspaces of
  Learning in Neural Networks", arXiv 2407.04797.  Uncentered second moments of a layer's
  inputs and outputs cut at an energy threshold (our reconstruction: the method section was
  not retrieved).

Conventions: rows are samples (N, D); a spectrum holds energies ``sigma^2`` (eigenvalues of
the *unnormalized* scatter, so they equal the squared singular values of ``R``), descending;
a basis is (D, K) with orthonormal columns whose largest-magnitude entry is positive.  All
math runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from netprism.core import dist
from netprism.core.validation import check_finite, check_nonempty, check_positive_int

Rule = Literal["reach", "below"]


def _check_threshold(threshold: float) -> float:
    ok = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not ok or math.isnan(threshold) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
    return float(threshold)


def _check_rule(rule: str) -> None:
    if rule not in ("reach", "below"):
        raise ValueError(f"rule must be 'reach' or 'below', got {rule!r}")


def _as_rows(
    x: torch.Tensor, name: str, dim: int | None = None, *, finite: bool = True
) -> torch.Tensor:
    """Validate an (N, D) tensor of width ``dim`` (finite unless ``finite=False``) and return
    it as float64."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have width D={dim}, got shape {tuple(x.shape)}")
    return (check_finite(x, name) if finite else x).to(torch.float64)


def _fix_signs(basis: torch.Tensor) -> torch.Tensor:
    """Flip each column of (D, K) so that its largest-magnitude entry is positive."""
    if basis.numel() == 0:
        return basis
    idx = basis.abs().argmax(dim=0)  # (K,)
    signs = torch.sign(basis[idx, torch.arange(basis.shape[1], device=basis.device)])
    return basis * torch.where(signs == 0, torch.ones_like(signs), signs) + 0.0  # no -0.0


def _eigh_desc(scatter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of a symmetric PSD (D, D) matrix: values clamped at 0, descending."""
    evals, evecs = torch.linalg.eigh(0.5 * (scatter + scatter.T))  # ascending
    return evals.flip(0).clamp_min(0.0), _fix_signs(evecs.flip(1))


def _count(cum_ratio: torch.Tensor, threshold: float, rule: str) -> int:
    """Components to keep given cumulative energy ratios (K,), nondecreasing."""
    below = int((cum_ratio < threshold).sum())
    # reach = below + 1: the component that crosses (or lands on) the threshold is kept.
    return below if rule == "below" else min(below + 1, cum_ratio.numel())


def energy_rank(
    spectrum: torch.Tensor, threshold: float, *, rule: Rule = "reach", squared: bool = True
) -> int:
    """How many leading components hold a fraction ``threshold`` of the energy.

    Parameters
    ----------
    spectrum : Tensor (K,)
        Energies ``sigma_i^2 >= 0`` (eigenvalues of ``R^T R``); sorted descending here.  With
        ``squared=False`` they are singular values ``sigma_i`` and are squared first.
    threshold : float in (0, 1]
    rule : {"reach", "below"}
        ``"reach"``: the smallest k with ``cumsum(sigma^2)[k-1] / sum(sigma^2) >= threshold``
        (a ratio landing exactly on the threshold reaches it).  ``"below"``: the number of
        components whose cumulative ratio is strictly below the threshold, as in GPM's code;
        always ``reach - 1`` (the crossing component is dropped; 0 is possible).
    squared : bool

    Returns
    -------
    int
        0 for an all-zero or empty spectrum.  With ``threshold=1.0`` and ``"reach"``: the
        number of components up to the last one with nonzero energy.

    Examples
    --------
    >>> energy_rank(torch.tensor([4.0, 3.0, 2.0, 1.0]), 0.75)
    3
    >>> energy_rank(torch.tensor([4.0, 3.0, 2.0, 1.0]), 0.75, rule="below")
    2
    """
    threshold = _check_threshold(threshold)
    _check_rule(rule)
    s = check_finite(torch.as_tensor(spectrum, dtype=torch.float64), "spectrum")
    if s.ndim != 1:
        raise ValueError(f"spectrum must be 1-D (K,), got shape {tuple(s.shape)}")
    if bool((s < 0).any()):
        raise ValueError(f"spectrum must be nonnegative, got minimum {float(s.min())}")
    energies = torch.sort(s if squared else s**2, descending=True).values
    cum = energies.cumsum(0)
    if cum.numel() == 0 or float(cum[-1]) <= 0.0:
        return 0
    return _count(cum / cum[-1], threshold, rule)


@dataclass(frozen=True, eq=False)
class Subspace:
    """A subspace of R^D with the energy of each direction.

    Attributes
    ----------
    basis : Tensor (D, K)
        Orthonormal columns sorted by energy, descending.
    spectrum : Tensor (K,)
        Energies ``sigma^2`` of the columns (nonnegative, descending).
    total_energy : float
        Energy over *all* D directions, also those cut off by :meth:`truncate`.

    Examples
    --------
    >>> sub = Subspace(torch.eye(3)[:, :2], torch.tensor([2.0, 1.0]), 4.0)
    >>> sub.dim, sub.rank, sub.explained_energy.tolist()
    (3, 2, [0.5, 0.75])
    >>> sub.project(torch.tensor([1.0, 2.0, 3.0])).tolist()
    [1.0, 2.0, 0.0]
    """

    basis: torch.Tensor
    spectrum: torch.Tensor
    total_energy: float

    def __post_init__(self) -> None:
        if self.basis.ndim != 2:
            raise ValueError(f"basis must be 2-D (D, K), got shape {tuple(self.basis.shape)}")
        if tuple(self.spectrum.shape) != (self.basis.shape[1],):
            raise ValueError(
                f"spectrum must have shape ({self.basis.shape[1]},) to match basis "
                f"{tuple(self.basis.shape)}, got {tuple(self.spectrum.shape)}"
            )

    @property
    def dim(self) -> int:
        """Ambient dimension D."""
        return int(self.basis.shape[0])

    @property
    def rank(self) -> int:
        """Number of basis columns K."""
        return int(self.basis.shape[1])

    @property
    def explained_energy(self) -> torch.Tensor:
        """Cumulative energy ratio (K,) of the first 1..K columns (zeros if no energy)."""
        if self.total_energy <= 0:
            return torch.zeros_like(self.spectrum)
        return self.spectrum.cumsum(0) / self.total_energy

    def truncate(self, k: int) -> Subspace:
        """The first ``k`` columns (``0 <= k <= rank``); ``total_energy`` is kept."""
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= self.rank:
            raise ValueError(f"k must be an int in [0, {self.rank}], got {k!r}")
        return Subspace(self.basis[:, :k], self.spectrum[:k], self.total_energy)

    def at_energy(self, threshold: float, *, rule: Rule = "reach") -> Subspace:
        """Keep the leading columns holding ``threshold`` of ``total_energy`` (see
        :func:`energy_rank`); if the kept columns cannot reach it, all of them are kept."""
        threshold = _check_threshold(threshold)
        _check_rule(rule)
        if self.total_energy <= 0:
            return self.truncate(0)
        return self.truncate(_count(self.explained_energy, threshold, rule))

    def projector(self) -> torch.Tensor:
        """The orthogonal projector ``B B^T`` (D, D)."""
        return self.basis @ self.basis.T

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Component of ``x`` (..., D) in the span, in ``x``'s dtype: ``(x B) B^T``."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dimension {self.dim}, got {tuple(x.shape)}")
        basis = self.basis.to(device=x.device, dtype=x.dtype)
        return (x @ basis) @ basis.T

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """Component of ``x`` (..., D) orthogonal to the span: ``x - project(x)``."""
        return x - self.project(x)


class StreamingCovariance:
    """Mergeable float64 moments of rows seen batch by batch.

    Holds the count ``n``, the sum (D,) and the raw scatter ``X^T X`` (D, D), all additive, so
    shards (or ranks, via an all-reduce of :meth:`state_dict`) combine by summing.  The
    accumulators live on the device of the first rows.  Centered moments are derived as
    ``X^T X - n mu mu^T``, which loses digits when ``|mu|`` dwarfs the spread.

    Parameters
    ----------
    dim : int, optional
        Row width D; inferred from the first :meth:`update` when omitted.

    Examples
    --------
    >>> cov = StreamingCovariance().update(torch.eye(2)).update(torch.ones(2, 2))
    >>> cov.n, cov.covariance().tolist()
    (4, [[0.75, 0.5], [0.5, 0.75]])
    """

    def __init__(self, dim: int | None = None) -> None:
        self._dim = None if dim is None else check_positive_int(dim, "dim")
        self._n = 0
        self._all_reduced = False
        self._sum: torch.Tensor | None = None  # (D,)
        self._sq: torch.Tensor | None = None  # (D, D)

    def __repr__(self) -> str:
        return f"StreamingCovariance(dim={self._dim}, n={self._n})"

    @property
    def dim(self) -> int | None:
        """Row width D (None until known)."""
        return self._dim

    @property
    def n(self) -> int:
        """Number of rows accumulated."""
        return self._n

    def _alloc(self, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._sum is None or self._sq is None:
            self._dim = dim
            self._sum = torch.zeros(dim, dtype=torch.float64, device=device)
            self._sq = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        return self._sum, self._sq

    def update(self, rows: torch.Tensor) -> StreamingCovariance:
        """Add rows (B, D); non-finite values, values whose squares overflow float64, or a
        wrong width raise ``ValueError`` and leave the accumulator unchanged."""
        rows = _as_rows(rows, "rows", self._dim, finite=False)  # float64
        batch_sum = rows.sum(0)  # (D,): non-finite iff some entry is
        if not bool(torch.isfinite(batch_sum).all()):
            check_finite(rows, "rows")  # raises, naming the first bad entry; state untouched
        total, sq = self._alloc(rows.shape[1], rows.device)
        rows = rows.to(total.device)
        batch_sum = batch_sum.to(total.device)
        # |S_ij| <= sqrt(S_ii S_jj): a finite diagonal keeps every second moment finite
        diagonal = sq.diagonal() + rows.pow(2).sum(0)
        if not bool(torch.isfinite(diagonal).all() and torch.isfinite(total + batch_sum).all()):
            raise ValueError(
                f"rows too large for float64 second moments: the largest |value| is "
                f"{float(rows.abs().max()):.3g}, whose square overflows once summed; rescale "
                "the inputs (the covariance is left as it was)"
            )
        self._n += rows.shape[0]
        total += batch_sum
        sq.addmm_(rows.T, rows)  # (D, D), in place: no new D x D matrix per batch
        return self

    def merge(self, other: StreamingCovariance) -> StreamingCovariance:
        """Add another accumulator's moments into this one (widths must match); returns self."""
        if not isinstance(other, StreamingCovariance):
            raise TypeError(f"can only merge a StreamingCovariance, got {type(other).__name__}")
        if self._dim is not None and other._dim is not None and self._dim != other._dim:
            raise ValueError(f"cannot merge covariances of width D={self._dim} and {other._dim}")
        if other._sum is None or other._sq is None:
            self._dim = self._dim if self._dim is not None else other._dim
            return self
        total, sq = self._alloc(other._sum.shape[0], other._sum.device)
        self._n += other._n
        total += other._sum.to(total.device)
        sq += other._sq.to(sq.device)
        return self

    def all_reduce(self) -> StreamingCovariance:
        """Sum the moments over the ranks of the process group, in place; returns self.

        Call it once, after every rank's ``update`` calls (a second call raises).  Each rank
        accumulates its shard of the rows; afterwards every rank holds the moments of all rows
        (equal to a one-pass accumulation up to summation order).  A rank with no rows
        contributes zeros.  A no-op without a multi-rank ``torch.distributed`` group.
        """
        if not dist.is_distributed():
            return self
        if self._all_reduced:  # a second sum would count every rank's rows world_size times
            raise RuntimeError(
                "this StreamingCovariance was already all-reduced; call all_reduce() once, "
                "after every rank's update() calls"
            )
        self._all_reduced = True
        dims = dist.all_gather_object(self._dim)
        known = sorted({d for d in dims if d is not None})
        if len(known) > 1:
            raise ValueError(f"cannot all-reduce covariances of different widths D={dims}")
        if not known:
            return self
        device = self._sum.device if self._sum is not None else torch.device("cpu")
        total, sq = self._alloc(known[0], device)
        self._n = int(dist.all_reduce_sum(torch.tensor([self._n], dtype=torch.int64)))
        total.copy_(dist.all_reduce_sum(total))
        sq.copy_(dist.all_reduce_sum(sq))
        return self

    def _require_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._n == 0 or self._sum is None or self._sq is None:
            raise ValueError("covariance of nothing: no rows were accumulated (n=0)")
        return self._sum, self._sq

    @property
    def mean(self) -> torch.Tensor:
        """Row mean mu (D,)."""
        total, _ = self._require_rows()
        return total / self._n

    @property
    def second_moment(self) -> torch.Tensor:
        """Raw scatter ``X^T X`` (D, D); its eigenvalues are the ``sigma^2`` of ``R = X``."""
        return self._require_rows()[1].clone()

    def scatter(self, *, centered: bool = False) -> torch.Tensor:
        """``X^T X`` or, centered, ``X^T X - n mu mu^T`` (D, D), not divided by n."""
        total, sq = self._require_rows()
        if not centered:
            return sq.clone()
        return sq - torch.outer(total, total) / self._n

    def covariance(self, *, centered: bool = False) -> torch.Tensor:
        """Second moment (D, D): ``X^T X / n`` or, centered, ``(X^T X - n mu mu^T) / (n - 1)``
        (unbiased, like ``torch.cov``; needs n >= 2)."""
        if not centered:
            return self.scatter() / self._n
        if self._n < 2:
            raise ValueError(f"centered covariance needs at least 2 rows, got n={self._n}")
        cov = self.scatter(centered=True) / (self._n - 1)
        return 0.5 * (cov + cov.T)

    def to_subspace(
        self, *, centered: bool = False, threshold: float | None = None, rule: Rule = "reach"
    ) -> Subspace:
        """Eigenbasis (D, D) of :meth:`scatter`, cut by :meth:`Subspace.at_energy` if
        ``threshold`` is given.  Spectra equal the ``sigma^2`` of the (centered) rows."""
        evals, evecs = _eigh_desc(self.scatter(centered=centered))
        sub = Subspace(evecs, evals, float(evals.cumsum(0)[-1]))
        return sub if threshold is None else sub.at_energy(threshold, rule=rule)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors ``n`` (int64 scalar), ``sum`` (D,), ``second_moment`` (D, D); D is 0 while
        unknown.  Each is additive across shards."""
        dim = self._dim or 0
        zeros = torch.zeros(dim, dtype=torch.float64)
        return {
            "n": torch.tensor(self._n, dtype=torch.int64),
            "sum": zeros.clone() if self._sum is None else self._sum.clone(),
            "second_moment": torch.outer(zeros, zeros) if self._sq is None else self._sq.clone(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> StreamingCovariance:
        """Replace the moments by those of :meth:`state_dict`; returns self."""
        missing = {"n", "sum", "second_moment"} - set(state)
        if missing:
            raise ValueError(f"state is missing key(s) {sorted(missing)}")
        n, total, sq = int(state["n"]), state["sum"], state["second_moment"]
        dim = int(total.shape[0]) if total.ndim == 1 else -1
        if dim < 0 or tuple(sq.shape) != (dim, dim) or n < 0 or (n > 0 and dim == 0):
            raise ValueError(
                f"state must hold n >= 0, sum (D,) and second_moment (D, D), got n={n}, "
                f"sum {tuple(total.shape)}, second_moment {tuple(sq.shape)}"
            )
        if self._dim is not None and dim not in (0, self._dim):
            raise ValueError(f"state has width D={dim}, this accumulator has D={self._dim}")
        self._n, self._dim = n, dim or self._dim
        self._sum = total.to(torch.float64).clone() if dim else None
        self._sq = sq.to(torch.float64).clone() if dim else None
        return self


def subspace_from_matrix(
    R: torch.Tensor,
    *,
    rows_are_samples: bool = True,
    centered: bool = False,
    threshold: float | None = None,
    rule: Rule = "reach",
) -> Subspace:
    """Subspace of a representation matrix by SVD (the direct path, for small cases).

    Parameters
    ----------
    R : Tensor (N, D), or (D, N) with ``rows_are_samples=False`` (GPM's column layout)
    centered : bool
        Subtract the row mean first (PCA); GPM and utilized rank use ``False``.
    threshold, rule : optional
        Cut with :meth:`Subspace.at_energy`.

    Returns
    -------
    Subspace
        ``basis`` (D, min(N, D)) = right singular vectors, ``spectrum`` = ``sigma^2``.  Equal,
        up to degenerate directions, to ``StreamingCovariance().update(R).to_subspace()``
        restricted to its first min(N, D) columns.

    Examples
    --------
    >>> sub = subspace_from_matrix(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), threshold=0.9)
    >>> sub.rank, sub.spectrum.tolist(), sub.total_energy
    (1, [9.0], 10.0)
    """
    rows = _as_rows(R, "R")
    rows = rows if rows_are_samples else rows.T
    check_nonempty(rows.shape[0], "R (rows)")
    if centered:
        rows = rows - rows.mean(0)
    _, s, vh = torch.linalg.svd(rows, full_matrices=False)  # s (min(N, D),), vh (min, D)
    energies = s**2
    sub = Subspace(_fix_signs(vh.T), energies, float(energies.cumsum(0)[-1]))
    return sub if threshold is None else sub.at_energy(threshold, rule=rule)
