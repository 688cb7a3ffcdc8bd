"""What the ``utilized_rank`` experiment measures: the width study, the compression sweep of
the widest model over seeds, and the small-ViT analogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RankStudy:
    """Everything the claims, metrics and figures are summarised from.

    ``widths``: width -> ``{"report": RankReport, "hidden_u", "mlu", "full_rank",
    "accuracy", "preserve": {"calibration", "held_out"}}`` (the first seed's model per width).
    ``rows``: one per (seed, threshold, method): ``seed``, ``threshold``, ``method``,
    ``param_fraction``, ``acc_before``, ``acc_after`` (fine-tuned), ``errors`` (layer ->
    held-out relative output error), ``factorized`` (names of the factorized layers).
    ``refs``: seed -> ``{"original", "original_ft"}`` test accuracies of the widest model
    before and after the same fine-tuning.  ``vit``: the ViT analogue's flat metrics (empty
    when skipped).
    """

    widths: dict[int, dict[str, Any]]
    rows: list[dict[str, Any]]
    refs: dict[int, dict[str, float]]
    vit: dict[str, float]
