"""Per-layer, per-task energy thresholds shared by GPM and SPACE.

Both methods of Saha et al. (GPM, ICLR 2021, arXiv 2103.09762; SPACE, IEEE Access 2021, arXiv
2001.08650) keep a fraction ``eps`` in (0, 1] of each layer's activation energy, with values
that differ per layer (e.g. 0.95 for the first, 0.99 for the rest) and may grow with the task
index (GPM's ``0.97 + 0.003 * t``).  A threshold is given as a float, a sequence with one entry
per layer, or a callable ``(layer_index, task) -> eps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Threshold = float | Sequence[float] | Callable[[int, int], float]


def check_threshold(value: Any, where: str = "") -> float:
    """``value`` as a float in (0, 1], or a ValueError naming ``where``.

    Examples
    --------
    >>> check_threshold(0.99)
    0.99
    >>> check_threshold(1.5, "[0]")
    Traceback (most recent call last):
    ...
    ValueError: threshold [0] must lie in (0, 1], got 1.5
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"threshold {where} must lie in (0, 1], got {value!r}".replace("  ", " "))
    return float(value)


def check_threshold_spec(threshold: Threshold) -> Threshold:
    """Validate a float or every entry of a sequence now (a callable is checked when called)."""
    if isinstance(threshold, Sequence) and not isinstance(threshold, str):
        if len(threshold) == 0:
            raise ValueError("threshold sequence is empty; give one value per layer")
        for i, eps in enumerate(threshold):
            check_threshold(eps, f"[{i}]")
    elif not callable(threshold):
        check_threshold(threshold)
    return threshold


def threshold_for(threshold: Threshold, index: int, name: str, n_layers: int, task: int) -> float:
    """The threshold of layer ``index`` (named ``name``, one of ``n_layers``) at task ``task``.

    Examples
    --------
    >>> threshold_for([0.9, 0.99], 1, "fc2", 2, task=0)
    0.99
    >>> threshold_for(lambda i, t: 0.97 + 0.003 * t, 0, "fc1", 2, task=2)
    0.976
    """
    if callable(threshold):
        return check_threshold(threshold(index, task), f"for layer {name!r} at task {task}")
    if isinstance(threshold, Sequence) and not isinstance(threshold, str):
        if len(threshold) != n_layers:
            raise ValueError(
                f"threshold has {len(threshold)} entries but there are {n_layers} layers "
                f"({name!r} is number {index})"
            )
        return check_threshold(threshold[index], f"[{index}]")
    return check_threshold(threshold)
