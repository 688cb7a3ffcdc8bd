"""What a run returns: :class:`Claim`, :class:`Result` and seed statistics (:func:`mean_std`).

Plain data shared by the experiments (which build results) and the report (which renders
them), so the report never imports the experiments.  The one module of ``core`` that touches files:
:meth:`Result.save` and :meth:`Result.load` go through :mod:`netprism.io` (atomic writes,
guarded JSON parsing), which imports nothing from netprism.

>>> r = Result("demo", config={}, metrics={"acc": 0.9}, claims=[Claim("c1", "acc high", 0.9, 0.8)])
>>> r.claims[0].holds, Result.from_dict(r.to_dict()) == r
(True, True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netprism.io import atomic_write_text, load_json

__all__ = ["FAITHFUL", "Claim", "Result", "faithful_verdict", "format_pm", "mean_std"]


@dataclass
class Claim:
    """One checkable statement of a paper, with what this run measured.

    ``holds`` is decided by comparing ``measured`` with ``target`` using ``op``
    (">=", "<=", ">", "<" or "=="), never tuned after the fact.
    """

    id: str
    text: str
    measured: float
    target: float
    op: str = ">="
    baseline: float | None = None
    baseline_name: str | None = None
    # A faithful twin (id ``<claim>_faithful``, a claim re-run in the paper's setting) also
    # carries the settings it changed, its seeds and a diagnosis: what its mechanism measured.
    settings: dict[str, Any] | None = None
    seeds: list[int] | None = None
    diagnosis: str | None = None

    @property
    def holds(self) -> bool:
        if self.measured is None or self.measured != self.measured:  # NaN never holds
            return False
        if self.op == ">=":
            return self.measured >= self.target
        if self.op == "<=":
            return self.measured <= self.target
        if self.op == "==":
            return self.measured == self.target
        if self.op == ">":
            return self.measured > self.target
        if self.op == "<":
            return self.measured < self.target
        raise ValueError(f"claim op must be one of '>=', '<=', '>', '<', '==', got {self.op!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "measured": self.measured,
            "target": self.target,
            "op": self.op,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "holds": self.holds,
            **{k: v for k, v in self._twin_fields().items() if v is not None},
        }

    def _twin_fields(self) -> dict[str, Any]:
        return {"settings": self.settings, "seeds": self.seeds, "diagnosis": self.diagnosis}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        return cls(
            id=d["id"],
            text=d["text"],
            measured=d["measured"],
            target=d["target"],
            op=d.get("op", ">="),
            baseline=d.get("baseline"),
            baseline_name=d.get("baseline_name"),
            settings=d.get("settings"),
            seeds=d.get("seeds"),
            diagnosis=d.get("diagnosis"),
        )


#: The id suffix of a claim's faithful twin: the same target, re-run in the paper's setting.
FAITHFUL = "_faithful"


def faithful_verdict(original: Claim, twin: Claim) -> str:
    """One line: does ``original`` hold as reproduced, only in the paper's setting (its twin
    ``<id>_faithful`` holds), or not here at all (the twin's diagnosis names the mechanism)?

    Examples
    --------
    >>> a = Claim("x", "", 0.4, 0.5)
    >>> faithful_verdict(a, Claim("x_faithful", "", 0.7, 0.5, diagnosis="spike-coded input"))
    "holds only in the paper's setting (difference: spike-coded input)"
    """
    why = twin.diagnosis or "no diagnosis recorded"
    if original.holds:
        also = "" if twin.holds else f" (the faithful variant does not: {why})"
        return f"holds as reproduced{also}"
    if twin.holds:
        return f"holds only in the paper's setting (difference: {why})"
    return f"does not hold here; mechanism: {why}"


@dataclass
class Result:
    """What an experiment returns and saves as ``result.json``."""

    name: str
    config: dict[str, Any]
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0
    scale: str = "small"
    versions: dict[str, str] = field(default_factory=dict)
    paper: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paper": self.paper,
            "scale": self.scale,
            "config": self.config,
            "metrics": self.metrics,
            "baselines": self.baselines,
            "claims": [c.to_dict() for c in self.claims],
            "figures": list(self.figures),
            "seconds": self.seconds,
            "seed": self.seed,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        missing = [k for k in ("name", "config", "metrics", "claims") if k not in d]
        if missing:
            raise ValueError(f"result is missing required key(s) {missing}")
        return cls(
            name=d["name"],
            config=d["config"],
            metrics=d["metrics"],
            baselines=d.get("baselines", {}),
            claims=[Claim.from_dict(c) for c in d["claims"]],
            figures=list(d.get("figures", [])),
            seconds=d.get("seconds", 0.0),
            seed=d.get("seed", 0),
            scale=d.get("scale", "small"),
            versions=d.get("versions", {}),
            paper=d.get("paper", ""),
        )

    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/result.json`` atomically and return its path."""
        path = Path(out_dir) / "result.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=_json_default))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Result:
        path = Path(path)
        try:
            data = load_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read result file {path}: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"invalid result file {path}: {err}") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for a single value).

    Examples
    --------
    >>> mean_std([1.0, 3.0])
    (2.0, 1.4142135623730951)
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std needs at least one value")
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def format_pm(stat: tuple[float, float], digits: int = 1, *, scale: float = 1.0) -> str:
    """``"mean +- std"`` of a :func:`mean_std` pair, scaled and rounded to ``digits``.

    A NaN standard deviation (nothing to spread over) prints the mean alone.

    Examples
    --------
    >>> format_pm((2.0, 1.4142), 2)
    '2.00 +- 1.41'
    >>> format_pm((0.5, 0.25), scale=100.0)
    '50.0 +- 25.0'
    """
    mean, std = scale * stat[0], scale * stat[1]
    if std != std:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} +- {std:.{digits}f}"
