"""Figures, the AUROC tables and the ranked CSV of the ``memorization`` experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from netprism.experiments.memorization.config import MemorizationConfig
from netprism.experiments.memorization.records import FZEstimate, MemorizationRuns
from netprism.io import atomic_write_text
from netprism.memorization import find_conflicting_duplicates, find_label_issues, plots
from netprism.memorization.scores import MemorizationScores
from netprism.report.figures import save_figure

SHOWN_METHODS = (
    "curvature",
    "curvature_final",
    "loss",
    "in_confidence",
    "aum",
    "forgetting",
    "cartography_confidence",
    "entropy",
    "confident_learning",
)


def save_tables(metrics: dict[str, Any], out_dir: Path) -> None:
    """Move the markdown AUROC tables out of ``metrics`` into ``auroc_tables.md``; the metrics
    keep a pointer to the file under ``tables``."""
    tables = [
        metrics.pop("auroc_table"),
        metrics.pop("duplicates_table", ""),
        metrics.pop("estimated_set_table", ""),
    ]
    atomic_write_text(out_dir / "auroc_tables.md", "\n\n".join(t for t in tables if t) + "\n")
    metrics["tables"] = "auroc_tables.md (mean ± std over seeds)"


def draw(records: MemorizationRuns, config: MemorizationConfig, out_dir: Path) -> list[str]:
    """Write the PNGs; return the figure file names."""
    return make_figures(config, records.runs, records.fz, out_dir)


def make_figures(
    config: MemorizationConfig, runs: list[dict[str, Any]], fz: FZEstimate | None, out_dir: Path
) -> list[str]:
    """Write the PNGs; return the figure file names."""
    names: list[str] = []
    for run in runs:
        s = run["setting"]
        if s.corruption != "noise" or "scores" not in run:
            continue
        tag = f"{s.dataset}_noise{s.amount:g}"
        names += _sample_grids(run, tag, out_dir)
        curv = run["scores"]["curvature"]
        save_figure(
            plots.score_histogram(curv, run["positives"], name="curvature"),
            out_dir / f"{tag}_histogram.png",
        )
        shown = {m: v for m, v in run["scores"].items() if m in SHOWN_METHODS}
        fig = plots.roc_curves(
            shown,
            run["positives"],
            aurocs=run["auroc"],
            title=f"{s.dataset}, {s.amount:.0%} label noise, seed {s.seed}",
        )
        save_figure(fig, out_dir / f"{tag}_roc.png")
        per_epoch = run["per_epoch_auroc"]
        fig = plots.auroc_over_epochs(
            per_epoch,
            every={"curvature": s.every},
            title=f"{s.dataset}, {s.amount:.0%} noise: single-epoch AUROC",
        )
        save_figure(fig, out_dir / f"{tag}_auroc_over_epochs.png")
        names += [f"{tag}_histogram.png", f"{tag}_roc.png", f"{tag}_auroc_over_epochs.png"]
    if fz is not None:
        names.append(_fz_scatter(runs, fz, config, out_dir))
    return names


def _sample_grids(run: dict[str, Any], tag: str, out_dir: Path) -> list[str]:
    curv = run["scores"]["curvature"]
    order = torch.argsort(curv, descending=True)
    out = []
    for which, idx in (("highest", order[:32]), ("lowest", order.flip(0)[:32])):
        fig = plots.sample_grid(
            run["x"],
            idx.tolist(),
            run["y"],
            true_labels=run["clean_y"],
            scores=curv,
            title=f"{which} curvature ({tag}); red: planted noise, given->true label",
        )
        save_figure(fig, out_dir / f"{tag}_{which}_curvature.png")
        out.append(f"{tag}_{which}_curvature.png")
    return out


def _fz_scatter(
    runs: list[dict[str, Any]], fz: FZEstimate, config: MemorizationConfig, out_dir: Path
) -> str:
    from matplotlib.figure import Figure

    fz_runs = [
        r
        for r in runs
        if r["setting"].corruption == "none"
        and r["setting"].hidden == config.fz_hidden
        and r["setting"].recipe == "experiment"
    ]
    curv = torch.stack([r["scores"]["curvature"] for r in fz_runs]).mean(0)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.scatter(fz.result.mem.numpy(), curv.numpy(), s=4, alpha=0.5)
    ax.set(
        xlabel="Feldman-Zhang memorization estimate",
        ylabel="curvature (epoch-avg)",
        yscale="log",
        title=f"clean {config.datasets[0]}: curvature vs FZ ({fz.result.n_models} models)",
    )
    fig.tight_layout()
    save_figure(fig, out_dir / "fz_scatter.png")
    return "fz_scatter.png"


def _reason(i: int, partner: dict[int, str], high_loss: set[int], pred: int, label: int) -> str:
    if i in partner:
        return partner[i]
    if pred != label:
        return f"likely mislabeled: the trained model predicts {pred}, the label is {label}"
    if i in high_loss:
        return "hard or possibly mislabeled: fit late in training (high epoch-averaged loss)"
    return "atypical / long tail: high curvature although fit early"


def audit_csv(runs: list[dict[str, Any]], out_dir: Path) -> str:
    """Rank the clean audit run's samples by curvature with a reason for the top 5 %."""
    audit = [
        r
        for r in runs
        if r["setting"].corruption == "none"
        and r["setting"].recipe == "experiment"
        and "scores" in r
    ][-1]
    scores = MemorizationScores(audit["scores"])
    n = len(scores)
    y, pred = audit["y"], audit["pred"]
    groups = find_conflicting_duplicates((audit["x"], y), scores.scores, return_groups=True)
    partner = {}
    for g in groups:
        for i in g.indices.tolist():
            others = [j for j in g.indices.tolist() if j != i]
            partner[i] = f"conflicting duplicate of #{others[0]} (labels {g.labels.tolist()})"
    high_loss = set(find_label_issues(scores, method="loss", fraction=0.05).tolist())
    reasons = {}
    for i in find_label_issues(scores, method="curvature", fraction=0.05).tolist():
        reasons[i] = _reason(i, partner, high_loss, int(pred[i]), int(y[i]))
    path = scores.to_csv(out_dir / "ranked_samples.csv", reasons=reasons)
    summary = f"{len(reasons)} of {n} flagged; {len(groups)} duplicate group(s)\n"
    atomic_write_text(out_dir / "ranked_samples_summary.txt", summary)
    return path.name
