"""The seven claims of the ``memorization`` experiment, judged from the runs' AUROCs.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831).  AUROCs are means (and stds) over seeds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from netprism.core.metrics import cosine, pearson, spearman, top_k_overlap
from netprism.core.results import Claim, mean_std
from netprism.experiments.memorization.config import MemorizationConfig
from netprism.experiments.memorization.records import FZEstimate, MemorizationRuns

CURVATURE_VARIANTS = ("curvature", "curvature_final", "curvature_sq")


def noise_table(
    runs: list[dict[str, Any]], corruption: str = "noise"
) -> dict[tuple[str, float], dict[str, list[float]]]:
    """``{(dataset, amount): {method: [AUROC per seed]}}`` (combined detectors included)."""
    table: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        s = run["setting"]
        if s.corruption != corruption or "auroc" not in run:
            continue
        key = (
            (s.dataset, s.amount)
            if corruption == "noise"
            else (f"{s.corruption} wd={s.weight_decay:g}", s.amount)
        )
        for name, value in {**run["auroc"], **run["combo_auroc"]}.items():
            table[key][name].append(value)
    return table


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def std(values: list[float]) -> float:
    return mean_std(values)[1]


def single_methods(row: dict[str, list[float]]) -> list[str]:
    return [m for m in row if not m.startswith("rank_mean") and m != "loss_early"]


def markdown_table(table: dict[tuple[Any, float], dict[str, list[float]]], label: str) -> str:
    """Mean +- std per method (rows) and setting (columns)."""
    keys = sorted(table, key=lambda k: (str(k[0]), k[1]))
    methods = list(table[keys[0]]) if keys else []
    head = [f"{d} {a:.0%}" if isinstance(a, float) and a < 1 else f"{d}" for d, a in keys]
    lines = [f"| {label} | " + " | ".join(head) + " |", "|---" * (len(keys) + 1) + "|"]
    for m in methods:
        cells = [f"{mean(table[k][m]):.3f} ± {std(table[k][m]):.3f}" for k in keys]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_and_metrics(
    records: MemorizationRuns, config: MemorizationConfig
) -> tuple[list[Claim], dict[str, Any], dict[str, dict[str, float]]]:
    """Judge the claims; return them with metrics and per-method baselines.

    The metrics hold the AUROC tables as markdown (``auroc_table``, and
    ``duplicates_table`` / ``estimated_set_table`` when run); a run with an output folder moves
    them into ``auroc_tables.md``.
    """
    runs, fz = records.runs, records.fz
    noise = noise_table(runs, "noise")
    dups = (
        noise_table(runs, "dup_exact")
        | noise_table(runs, "dup_noise")
        | noise_table(runs, "dup_shift")
    )
    metrics: dict[str, Any] = {"auroc_table": markdown_table(noise, "AUROC (label noise)")}
    estimated = estimated_set_table(runs)
    if estimated:
        metrics["estimated_set_table"] = estimated
    if dups:
        metrics["duplicates_table"] = markdown_table(dups, "AUROC (duplicates)")
    baselines: dict[str, dict[str, float]] = defaultdict(dict)
    for (d, rate), row in sorted(noise.items()):
        for m in single_methods(row):
            baselines[m][f"{d} {rate:.0%}"] = mean(row[m])
        metrics[f"curvature AUROC {d} {rate:.0%}"] = (
            f"{mean(row['curvature']):.3f} ± {std(row['curvature']):.3f}"
        )
    for (kind, _), row in sorted(dups.items()):
        for m in single_methods(row):
            baselines[m][kind] = mean(row[m])
    claims = [
        _mislabel_claim(config, noise),
        _average_claim(config, noise, metrics),
        *_fz_claims(config, runs, fz, metrics, baselines),
        _duplicates_claim(dups),
        _best_peer_claim(noise),
        _combined_claim(config, noise, metrics),
    ]
    metrics.update(_timings(runs))
    return claims, metrics, dict(baselines)


def estimated_set_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: the estimated label-issue set's size, precision and recall (mean ± std over
    seeds) per score, dataset and noise rate; empty when no run planted label noise."""
    rows: dict[tuple[str, str, float], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        s = run["setting"]
        if s.corruption != "noise" or "estimated_set" not in run:
            continue
        for method, quality in run["estimated_set"].items():
            for key, value in quality.items():
                rows[(method, s.dataset, s.amount)][key].append(float(value))
    if not rows:
        return ""
    lines = [
        "| estimated set (no size given) | noise | planted | estimated size | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for method, dataset, amount in sorted(rows):
        r = rows[(method, dataset, amount)]
        cells = [f"{mean(r['planted']):.0f}", f"{mean(r['size']):.1f} ± {std(r['size']):.1f}"]
        cells += [f"{mean(r[k]):.3f} ± {std(r[k]):.3f}" for k in ("precision", "recall")]
        lines.append(f"| {method} on {dataset} | {amount:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _worst(noise: dict, dataset: str, method: str) -> float:
    return min(mean(row[method]) for (d, _), row in noise.items() if d == dataset)


def _mislabel_claim(config: MemorizationConfig, noise: dict) -> Claim:
    parts, margins, base_margins = [], [], []
    for d, target in zip(config.datasets, config.targets):
        worst = _worst(noise, d, "curvature")
        margins.append(worst - target)
        base_margins.append(_worst(noise, d, "loss") - target)
        parts.append(f"{d}: worst {worst:.3f} (target {target})")
    rates = ", ".join(f"{r:.0%}" for r in config.noise_rates)
    return Claim(
        "mislabel_auroc",
        f"Epoch-averaged curvature detects planted symmetric label noise ({rates}, "
        f"{config.seeds} seeds) with mean AUROC at or above the target at every rate; measured "
        f"= smallest margin over target ({'; '.join(parts)})",
        min(margins),
        0.0,
        ">=",
        baseline=min(base_margins),
        baseline_name="epoch-averaged loss margin",
    )


def _average_claim(config: MemorizationConfig, noise: dict, metrics: dict) -> Claim:
    diffs = {}
    for d in config.datasets:
        rows = [row for (dd, _), row in noise.items() if dd == d]
        diffs[d] = mean([mean(r["curvature"]) - mean(r["curvature_final"]) for r in rows])
        metrics[f"average minus final AUROC, {d}"] = round(diffs[d], 4)
    first = config.datasets[0]
    return Claim(
        "average_beats_final",
        f"On {first}, curvature averaged over epochs beats final-epoch curvature (mean AUROC "
        f"difference over noise rates; other datasets in metrics)",
        diffs[first],
        0.0,
        ">",
    )


def _fz_claims(
    config: MemorizationConfig,
    runs: list[dict[str, Any]],
    fz: FZEstimate | None,
    metrics: dict,
    baselines: dict[str, dict[str, float]],
) -> list[Claim]:
    if fz is None:
        nan = float("nan")
        return [
            Claim("fz_agreement", "Feldman-Zhang agreement (not measured: fz_models=0)", nan, 1.0),
            Claim("fz_cost", "Feldman-Zhang cost (not measured)", nan, 1.0),
        ]
    clean = [
        r
        for r in runs
        if r["setting"].corruption == "none"
        and r["setting"].hidden == config.fz_hidden
        and r["setting"].epochs == config.fz_epochs
    ]
    fz_runs = [r for r in clean if r["setting"].recipe == "experiment"]
    default_runs = [r for r in clean if r["setting"].recipe == "library_default"]
    mem = fz.result.mem
    keep = torch.isfinite(mem)
    agreement: dict[str, dict[str, float]] = {}
    for name in fz_runs[0]["scores"]:
        score = torch.stack([r["scores"][name] for r in fz_runs]).mean(0)
        agreement[name] = fz_agreement(score[keep], mem[keep])
    half = fz.result.split_half()
    for name, stats in agreement.items():
        target = metrics if name == "curvature" else baselines[name]
        for k in ("pearson", "spearman", "cosine_ratio", "top5_ratio"):
            target[f"fz {k}"] = round(stats[k], 4)
    metrics["fz split-half pearson"] = round(half["pearson"], 4)
    metrics["fz split-half spearman"] = round(half["spearman"], 4)
    c = agreement["curvature"]
    run_seconds = mean([r["seconds"]["train"] + r["seconds"]["curvature"] for r in fz_runs])
    core_seconds = fz.core_seconds
    metrics["fz core-seconds"] = round(core_seconds, 1)
    metrics["curvature run seconds (same architecture)"] = round(run_seconds, 2)
    metrics["fz cost ratio, the experiment's curvature settings"] = core_seconds / run_seconds
    return [
        Claim(
            "fz_agreement",
            f"Curvature of clean {fz_runs[0]['setting'].dataset} agrees with the Feldman-Zhang "
            f"estimate ({fz.result.n_models} subset models): Pearson {c['pearson']:.3f} (>= 0.5), "
            f"cosine {c['cosine']:.3f} = {c['cosine_ratio']:.1f}x a permutation (>= 3x), "
            f"top-5% overlap {c['top5_overlap']:.2f} = {c['top5_ratio']:.1f}x chance (>= 5x); "
            f"measured = the smallest of the three as a fraction of its target",
            c["normalized"],
            1.0,
            ">=",
            baseline=agreement["loss"]["normalized"],
            baseline_name="epoch-averaged loss",
        ),
        _fz_cost(default_runs, fz, mem, keep, metrics),
    ]


def _fz_cost(
    default_runs: list[dict[str, Any]],
    fz: FZEstimate,
    mem: torch.Tensor,
    keep: torch.Tensor,
    metrics: dict,
) -> Claim:
    """The Feldman-Zhang estimate's core-seconds over one curvature run at the library
    defaults, which must still agree with it (Pearson >= 0.5)."""
    seconds = mean([r["seconds"]["train"] + r["seconds"]["curvature"] for r in default_runs])
    score = torch.stack([r["scores"]["curvature"] for r in default_runs]).mean(0)
    r = pearson(score[keep], mem[keep])
    s = default_runs[0]["setting"]
    ratio = fz.core_seconds / seconds
    metrics["fz cost ratio, library defaults"] = ratio
    metrics["fz pearson, library defaults"] = r
    return Claim(
        "fz_cost",
        f"One curvature run at the library defaults (h = {s.h:g}, {s.n_probes} probes, every "
        f"{s.every} epochs; {seconds:.1f} s) costs {ratio:.1f}x less than the Feldman-Zhang "
        f"estimate ({fz.core_seconds:.0f} core-seconds = wall-clock x workers; >= 50x) and "
        f"still agrees with it, Pearson {r:.3f} (>= 0.5); measured = the smaller of ratio / 50 "
        f"and Pearson / 0.5",
        min(ratio / 50.0, r / 0.5),
        1.0,
        ">=",
    )


def fz_agreement(score: torch.Tensor, mem: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Pearson, Spearman, cosine (and vs a permutation), top-5 % overlap (and vs chance)."""
    k = max(1, round(0.05 * len(mem)))
    perm = torch.randperm(len(mem), generator=torch.Generator().manual_seed(seed))
    cos = cosine(score, mem)
    cos_perm = abs(cosine(score, mem[perm]))
    overlap = top_k_overlap(score, mem, k)
    chance = k / len(mem)
    stats = {
        "pearson": pearson(score, mem),
        "spearman": spearman(score, mem),
        "cosine": cos,
        "cosine_permuted": cos_perm,
        "cosine_ratio": cos / max(cos_perm, 1e-12),
        "top5_overlap": overlap,
        "top5_ratio": overlap / chance,
    }
    stats["normalized"] = min(
        stats["pearson"] / 0.5, stats["cosine_ratio"] / 3.0, stats["top5_ratio"] / 5.0
    )
    return stats


def _duplicates_claim(dups: dict) -> Claim:
    if not dups:
        return Claim("duplicates_auroc", "conflicting duplicates (not run)", float("nan"), 0.95)
    search = "duplicate_search"
    worst = min(mean(row[search]) for row in dups.values())
    curvature_worst = min(mean(row["curvature"]) for row in dups.values())
    parts = [
        f"{k[0]}: search {mean(row[search]):.3f}, curvature {mean(row['curvature']):.3f}"
        for k, row in sorted(dups.items())
    ]
    return Claim(
        "duplicates_auroc",
        f"Conflicting duplicates (both members positive; exact, noisy and one-pixel-shifted "
        f"copies) are found by searching the inputs, up to a one-pixel shift, for a "
        f"differently-labelled neighbour (duplicate_scores); curvature, the paper's score, is "
        f"the baseline; measured = worst AUROC ({'; '.join(parts)})",
        worst,
        0.95,
        ">=",
        baseline=curvature_worst,
        baseline_name="averaged curvature",
    )


def _best_peer_claim(noise: dict) -> Claim:
    gaps, parts = [], []
    for (d, rate), row in sorted(noise.items()):
        peers = [m for m in single_methods(row) if m not in CURVATURE_VARIANTS]
        best = max(peers, key=lambda m: mean(row[m]))
        gap = mean(row["curvature"]) - mean(row[best])
        gaps.append(gap)
        parts.append(f"{d} {rate:.0%}: {gap:+.3f} vs {best}")
    return Claim(
        "curvature_vs_best_peer",
        f"Curvature is within 0.01 AUROC of the best peer at every setting; measured = "
        f"worst gap ({'; '.join(parts)})",
        min(gaps),
        -0.01,
        ">=",
    )


def _combined_claim(config: MemorizationConfig, noise: dict, metrics: dict) -> Claim:
    first, last = config.datasets[0], config.datasets[-1]
    combos = [
        m for m in next(iter(noise.values())) if m not in single_methods(next(iter(noise.values())))
    ]
    on_first = {
        c: mean([mean(row[c]) for (d, _), row in noise.items() if d == first]) for c in combos
    }
    chosen = max(on_first, key=lambda c: on_first[c])
    metrics["combined detector (chosen on " + first + ")"] = chosen
    gaps, parts = [], []
    for (d, rate), row in sorted(noise.items()):
        if d != last:
            continue
        best = max(single_methods(row), key=lambda m: mean(row[m]))
        gaps.append(mean(row[chosen]) - mean(row[best]))
        parts.append(f"{rate:.0%}: {mean(row[chosen]):.3f} vs {best} {mean(row[best]):.3f}")
    return Claim(
        "combined_beats_all",
        f"A combined detector chosen on {first} among {len(combos)} candidates "
        f"({chosen}) beats every single method on {last} at every noise rate; "
        f"measured = worst margin ({'; '.join(parts)})",
        min(gaps),
        0.0,
        ">",
    )


def _timings(runs: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for d in sorted({r["setting"].dataset for r in runs}):
        rs = [r for r in runs if r["setting"].dataset == d and r["setting"].corruption == "noise"]
        if not rs:
            continue
        train = mean([r["seconds"]["train"] for r in rs])
        curv = mean([r["seconds"]["curvature"] for r in rs])
        out[f"seconds per run {d}: train"] = round(train, 2)
        out[f"seconds per run {d}: curvature"] = round(curv, 2)
        out[f"curvature / train time {d}"] = round(curv / train, 2)
    return out
