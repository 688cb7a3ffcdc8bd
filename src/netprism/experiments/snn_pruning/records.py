"""What one seed of the ``snn_pruning`` experiment measures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SeedRun:
    """Everything measured on one seed (accuracies as fractions)."""

    seed: int
    ann: float
    full: float  # full-width SNN at T0 after fine-tuning
    full_params: int = 0
    widths: dict[str, list[int]] = field(default_factory=dict)  # "membrane@0.999" -> per layer
    retrained: dict[str, dict[str, Any]] = field(default_factory=dict)
    staged: dict[int, float] = field(default_factory=dict)  # T -> accuracy (pruned network)
    direct_final: float = 0.0
    quant_snn: dict[int, float] = field(default_factory=dict)
    quant_ann: dict[int, float] = field(default_factory=dict)
    energy_full: dict[str, float] = field(default_factory=dict)
    energy_pruned: dict[str, float] = field(default_factory=dict)
    faithful: bool = False  # a run of the faithful variant (spike-coded input)
    final_model: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (integer keys as strings, no model)."""
        out = {k: v for k, v in vars(self).items() if k != "final_model"}
        for key in ("staged", "quant_snn", "quant_ann"):
            out[key] = {str(k): v for k, v in out[key].items()}
        return out
