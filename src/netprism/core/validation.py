"""Boundary checks: each raises ``ValueError`` naming the value and what was expected."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def check_finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise if ``x`` holds NaN or inf; return ``x``."""
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            n_bad = int(bad.sum())
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{name} must be finite: found {n_bad} NaN/inf value(s), first at index {first}"
            )
    return x


def check_labels(y: torch.Tensor, num_classes: int, name: str = "y") -> torch.Tensor:
    """Raise unless ``y`` is a 1-D integer tensor with values in ``[0, num_classes)``."""
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(y.shape)}")
    if y.dtype == torch.bool:
        raise ValueError(
            f"{name} are booleans; class labels must be integers 0 .. K-1 "
            "(for two classes pass y.long())"
        )
    if y.is_floating_point():
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        lo, hi = int(y.min()), int(y.max())
        raise ValueError(f"{name} must lie in [0, {num_classes}), got values in [{lo}, {hi}]")
    return y


def check_nonempty(n: int, name: str = "dataset") -> None:
    """Raise if a collection of ``n`` items is empty."""
    if n <= 0:
        raise ValueError(f"{name} is empty: expected at least one sample, got {n}")


def check_fraction(
    value: float, name: str, *, low: float = 0.0, high: float = 1.0, high_inclusive: bool = False
) -> float:
    """Raise unless ``low <= value < high`` (``<= high`` with ``high_inclusive``)."""
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    upper_ok = ok_type and (value <= high if high_inclusive else value < high)
    if not ok_type or math.isnan(value) or value < low or not upper_ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {value!r}")
    return float(value)


def check_positive_int(value: int, name: str) -> int:
    """Raise unless ``value`` is an int > 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_shape(x: torch.Tensor, expected: Sequence[int | None], name: str = "x") -> torch.Tensor:
    """Raise unless ``x.shape`` matches ``expected`` (``None`` matches any size)."""
    ok = x.ndim == len(expected) and all(
        e is None or int(s) == e for s, e in zip(x.shape, expected)
    )
    if not ok:
        want = ", ".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")
    return x


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (a ``ValueError``, as in scikit-learn)."""
