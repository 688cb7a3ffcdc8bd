"""``memorization``: Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss
Function Around Samples", ICML 2024 (arXiv 2307.05831).

Planted symmetric label noise and conflicting duplicates are detected by epoch-averaged
input-loss curvature and by every peer computed from the same training runs (CSL, the
epoch-averaged loss, learning time, in-confidence, AUM, forgetting, cartography, entropy) plus
cleanlab's confident learning; the curvature scores of clean data are compared with a
Feldman-Zhang subsampling estimate.  Targets come from a small-scale calibration run before the
claims were fixed.

Under ``torchrun`` the training runs are shared out over the ranks and the Feldman-Zhang
models spread over them (model ``m`` on rank ``m % world_size``); results equal a
single-process run.

Method note: ``docs/methods/memorization.md`` in the repository.
"""

from __future__ import annotations

from pathlib import Path

from netprism.core.seed import torch_threads
from netprism.experiments.base import Result, register_experiment, seeded_result
from netprism.experiments.memorization.claims import claims_and_metrics
from netprism.experiments.memorization.config import SCALES, MemorizationConfig
from netprism.experiments.memorization.figures import audit_csv, draw, save_tables
from netprism.experiments.memorization.run import measure, resolved


@register_experiment(
    "memorization",
    config=MemorizationConfig,
    scales=SCALES,
    demo=True,
    cost=13,  # rough CPU minutes at small
    paper="Garg, Ravikumar, Roy: Memorization through the lens of curvature "
    "(ICML 2024, arXiv 2307.05831)",
)
def run(config: MemorizationConfig, *, out_dir: Path | None = None) -> Result:
    """Run the label-noise, duplicate and Feldman-Zhang studies and judge the seven claims.

    A plain run rather than a :class:`netprism.experiments.base.SeedStudy`: ``seeds`` is a
    count (not a tuple), the result records the resolved config and ``config.seed``, and with
    an output folder the AUROC tables move from the metrics into ``auroc_tables.md``.
    """
    config = resolved(config)
    with torch_threads(config.threads):  # tiny models: 1 thread per run, runs in parallel
        records = measure(config)
    claims, metrics, baselines = claims_and_metrics(records, config)
    figures: list[str] = []
    if out_dir is not None:
        out = Path(out_dir)
        save_tables(metrics, out)
        figures = draw(records, config, out)
        if config.export_csv:
            metrics["export_csv"] = audit_csv(records.runs, out)
    return seeded_result(
        "memorization",
        config,
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        seed=config.seed,
    )


__all__ = ["SCALES", "MemorizationConfig", "run"]
