"""Claims and metrics of the ``snn_pruning`` experiment.

Accuracies in percentage points, mean +- std over seeds; four claims
(``spatial_compression``, ``temporal_schedule``, ``quantization_stable``, ``energy_ratio``)
and the faithful twins of the first and the last (spike-coded input; records marked
``faithful``), each with the mechanism it measured as its diagnosis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netprism.core.results import Claim, mean_std
from netprism.core.results import format_pm as pm
from netprism.experiments.snn_pruning.config import faithful_config
from netprism.experiments.snn_pruning.records import SeedRun
from netprism.spiking.pruning import ENERGY_PJ


def _pts(values: list[float]) -> tuple[float, float]:
    """Mean and std over seeds of accuracies given as fractions, in points."""
    return mean_std([100.0 * v for v in values])


def claims_and_metrics(
    records: list[SeedRun], config: Any
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The claims, the flat metrics and the baselines' numbers."""
    runs = [r for r in records if not r.faithful]
    twins = [r for r in records if r.faithful]
    metrics: dict[str, float] = {"n_seeds": float(len(runs))}
    metrics["ann"], metrics["ann_std"] = _pts([r.ann for r in runs])
    metrics["snn_full"], metrics["snn_full_std"] = _pts([r.full for r in runs])
    for key in runs[0].widths:
        for i, w in enumerate(np.mean([r.widths[key] for r in runs], axis=0)):
            metrics[f"width_{key}_layer{i + 1}"] = float(w)
    for key in runs[0].retrained:
        metrics[f"retrained_{key}_snn"] = _pts([r.retrained[key]["snn"] for r in runs])[0]
        metrics[f"retrained_{key}_param_ratio"] = float(
            np.mean([r.full_params / r.retrained[key]["params"] for r in runs])
        )
    for t in runs[0].staged:
        metrics[f"staged_T{t}"] = _pts([r.staged[t] for r in runs])[0]
    metrics["direct_final"] = _pts([r.direct_final for r in runs])[0]
    for bits in runs[0].quant_snn:
        metrics[f"quant_snn_{bits}b"] = _pts([r.quant_snn[bits] for r in runs])[0]
        metrics[f"quant_ann_{bits}b"] = _pts([r.quant_ann[bits] for r in runs])[0]
    for name in ("full", "pruned"):
        for key in ("snn_pj", "ann_pj", "ann_over_snn", "snn_ac", "snn_mac"):
            values = [getattr(r, f"energy_{name}")[key] for r in runs]
            metrics[f"energy_{name}_{key}"] = float(np.mean(values))
    baselines = {
        "ann": {"acc": metrics["ann"], "energy_pj": metrics["energy_full_ann_pj"]},
        "direct_at_final_T": {"acc": metrics["direct_final"]},
    }
    claims = [
        _claim_spatial(runs, config),
        _claim_temporal(runs, config),
        _claim_quant(runs, config),
        _claim_energy(runs, config),
    ]
    if twins:
        claims += _faithful_twins(runs, twins, config, metrics)
    return claims, metrics, baselines


def _claim_spatial(runs: list[SeedRun], config: Any) -> Claim:
    key = next(iter(runs[0].retrained))
    full = _pts([r.full for r in runs])
    parts = []
    for k in runs[0].retrained:
        ratio = float(np.mean([r.full_params / r.retrained[k]["params"] for r in runs]))
        acc = _pts([r.retrained[k]["snn"] for r in runs])
        widths = np.mean([r.retrained[k]["widths"] for r in runs], axis=0).round(1).tolist()
        parts.append(f"{k}: widths {widths}, {ratio:.1f}x fewer parameters, SNN {pm(acc)}")
    ratio = float(np.mean([r.full_params / r.retrained[key]["params"] for r in runs]))
    drop = full[0] - _pts([r.retrained[key]["snn"] for r in runs])[0]
    table = "; ".join(
        f"{k} {np.mean([r.widths[k] for r in runs], axis=0).round(1).tolist()}"
        for k in runs[0].widths
    )
    return Claim(
        id="spatial_compression",
        text=f"PCA of the time-averaged membrane potential before the reset ({key}) gives >= "
        f"{config.min_param_ratio:g}x fewer parameters with <= {config.max_drop_points:g} "
        f"points drop after retraining (full-width SNN at T={config.t0}: {pm(full)}). "
        f"Retrained: " + "; ".join(parts) + f". Widths of {list(config.hidden)} by quantity "
        f"(mean over seeds): {table}. measured = min(ratio - {config.min_param_ratio:g}, "
        f"{config.max_drop_points:g} - drop) with ratio {ratio:.2f}, drop {drop:.2f} points",
        measured=min(ratio - config.min_param_ratio, config.max_drop_points - drop),
        target=0.0,
        op=">=",
        baseline=full[0],
        baseline_name=f"full-width SNN, T={config.t0}",
    )


def _claim_temporal(runs: list[SeedRun], config: Any) -> Claim:
    final = config.stages[-1]
    curve = ", ".join(
        f"T={t} {pm(_pts([r.staged[t] for r in runs]))}" for t in (config.t0, *config.stages)
    )
    gap = float(np.mean([100 * (r.staged[final] - r.direct_final) for r in runs]))
    total = config.stage_epochs * len(config.stages)
    return Claim(
        id="temporal_schedule",
        text=f"staged T reduction of the pruned SNN ({curve}) is at least as accurate at "
        f"T={final} as converting and fine-tuning directly at T={final} for the same {total} "
        f"epochs ({pm(_pts([r.direct_final for r in runs]))}); latency reduced "
        f"{config.t0 / final:g}x from T={config.t0}; measured = staged - direct (points)",
        measured=gap,
        target=0.0,
        op=">=",
        baseline=_pts([r.direct_final for r in runs])[0],
        baseline_name=f"direct at T={final}",
    )


def _claim_quant(runs: list[SeedRun], config: Any) -> Claim:
    fp = _pts([r.full for r in runs])[0]
    losses = {b: fp - _pts([r.quant_snn[b] for r in runs])[0] for b in runs[0].quant_snn}
    kept = [b for b in losses if b >= config.quant_bits_floor]
    worst = max(losses[b] for b in kept) if kept else float("nan")
    curve = ", ".join(
        f"{b}b {_pts([r.quant_snn[b] for r in runs])[0]:.1f} (ANN "
        f"{_pts([r.quant_ann[b] for r in runs])[0]:.1f})"
        for b in runs[0].quant_snn
    )
    return Claim(
        id="quantization_stable",
        text=f"post-training uniform weight quantization of the full SNN (fp32 {fp:.1f}) loses "
        f"<= {config.max_quant_loss_points:g} point down to {config.quant_bits_floor} bits: "
        f"{curve}; measured = the largest loss at >= {config.quant_bits_floor} bits (points)",
        measured=worst,
        target=config.max_quant_loss_points,
        op="<=",
        baseline=fp,
        baseline_name="fp32 SNN",
    )


def _claim_energy(runs: list[SeedRun], config: Any) -> Claim:
    before = float(np.mean([r.energy_full["ann_over_snn"] for r in runs]))
    after = float(np.mean([r.energy_pruned["ann_over_snn"] for r in runs]))
    full_pj = float(np.mean([r.energy_full["snn_pj"] for r in runs]))
    pruned_pj = float(np.mean([r.energy_pruned["snn_pj"] for r in runs]))
    ann_pj = float(np.mean([r.energy_full["ann_pj"] for r in runs]))
    return Claim(
        id="energy_ratio",
        text=f"energy proxy per inference ({config.encoding} coding; MAC "
        f"{ENERGY_PJ['mac']} pJ, AC {ENERGY_PJ['ac']} pJ, 45 nm): ANN {ann_pj / 1e3:.1f} nJ, "
        f"full SNN at T={config.t0} {full_pj / 1e3:.1f} nJ (ANN/SNN {before:.2f}), pruned SNN "
        f"at T={config.stages[-1]} {pruned_pj / 1e3:.1f} nJ (ANN/SNN {after:.2f}); measured = "
        "ANN / pruned SNN energy, > 1 means the pruned SNN is cheaper than the ANN",
        measured=after,
        target=1.0,
        op=">",
        baseline=before,
        baseline_name="ANN/SNN before pruning",
    )


def _faithful_twins(
    runs: list[SeedRun], twins: list[SeedRun], config: Any, metrics: dict[str, float]
) -> list[Claim]:
    """``spatial_compression`` and ``energy_ratio`` on the faithful runs, with what their
    mechanism measured in both variants: the kept widths, and how much of the pruned SNN's
    energy is first-layer MACs (under direct coding ANN / SNN <= ANN MACs / SNN MACs)."""
    faithful = faithful_config(config)
    spatial, energy = _claim_spatial(twins, faithful), _claim_energy(twins, faithful)
    spatial.id, energy.id = "spatial_compression_faithful", "energy_ratio_faithful"
    key = next(iter(runs[0].retrained))
    parts = {}
    for name, rs in (("reproduced", runs), ("faithful", twins)):
        widths = np.mean([r.retrained[key]["widths"] for r in rs], axis=0).round(1).tolist()
        ratio = float(np.mean([r.full_params / r.retrained[key]["params"] for r in rs]))
        mac = [r.energy_pruned["snn_mac"] for r in rs]
        share = float(np.mean([ENERGY_PJ["mac"] * r.energy_pruned["snn_mac"]
                               / r.energy_pruned["snn_pj"] for r in rs]))  # fmt: skip
        bound = float(np.mean([r.energy_pruned["ann_mac"] / m if m else np.inf
                               for r, m in zip(rs, mac)]))  # fmt: skip
        metrics[f"{name}_first_layer_mac_share"] = share
        metrics[f"{name}_energy_bound_ann_mac_over_snn_mac"] = bound
        parts[name] = (widths, ratio, share, bound)
    (w0, r0, s0, b0), (w1, r1, s1, b1) = parts["reproduced"], parts["faithful"]
    settings = {
        "encoding": faithful.encoding,
        "ft_epochs": faithful.ft_epochs,
        "stage_epochs": faithful.stage_epochs,
    }
    for claim in (spatial, energy):
        claim.settings, claim.seeds = dict(settings), [r.seed for r in twins]
    spatial.diagnosis = (
        f"the membrane rule ({key}) keeps widths {w1} with {faithful.encoding} input "
        f"({r1:.2f}x fewer parameters) against {w0} with {config.encoding} input ({r0:.2f}x)"
    )
    energy.diagnosis = (
        f"first-layer MACs are {s0:.0%} of the pruned SNN's energy with {config.encoding} input, "
        f"which caps ANN / SNN at ANN MACs / SNN MACs = {b0:.2f}; with {faithful.encoding} "
        f"input they are {s1:.0%}" + ("" if np.isinf(b1) else f" (cap {b1:.2f})")
    )
    return [spatial, energy]
