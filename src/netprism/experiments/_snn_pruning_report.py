"""Claims, metrics and figures of the ``snn_pruning`` experiment (see :mod:`.snn_pruning`).

Accuracies in percentage points, mean +- std over seeds; four claims
(``spatial_compression``, ``temporal_schedule``, ``quantization_stable``, ``energy_ratio``)
and four figures (widths per quantity, accuracy vs T, accuracy vs bits, energy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from netprism.experiments.base import Claim, mean_std
from netprism.spiking.pruning import ENERGY_PJ


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
    final_model: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "final_model"}
        for key in ("staged", "quant_snn", "quant_ann"):
            out[key] = {str(k): v for k, v in out[key].items()}
        return out


def _pts(values: list[float]) -> tuple[float, float]:
    return mean_std([100.0 * v for v in values])


def _pm(stat: tuple[float, float]) -> str:
    return f"{stat[0]:.1f} +- {stat[1]:.1f}"


def claims_and_metrics(
    runs: list[SeedRun], config: Any
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
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
    return claims, metrics, baselines


def _claim_spatial(runs: list[SeedRun], config: Any) -> Claim:
    key = next(iter(runs[0].retrained))
    full = _pts([r.full for r in runs])
    parts = []
    for k in runs[0].retrained:
        ratio = float(np.mean([r.full_params / r.retrained[k]["params"] for r in runs]))
        acc = _pts([r.retrained[k]["snn"] for r in runs])
        widths = np.mean([r.retrained[k]["widths"] for r in runs], axis=0).round(1).tolist()
        parts.append(f"{k}: widths {widths}, {ratio:.1f}x fewer parameters, SNN {_pm(acc)}")
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
        f"points drop after retraining (full-width SNN at T={config.t0}: {_pm(full)}). "
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
        f"T={t} {_pm(_pts([r.staged[t] for r in runs]))}" for t in (config.t0, *config.stages)
    )
    gap = float(np.mean([100 * (r.staged[final] - r.direct_final) for r in runs]))
    total = config.stage_epochs * len(config.stages)
    return Claim(
        id="temporal_schedule",
        text=f"staged T reduction of the pruned SNN ({curve}) is at least as accurate at "
        f"T={final} as converting and fine-tuning directly at T={final} for the same {total} "
        f"epochs ({_pm(_pts([r.direct_final for r in runs]))}); latency reduced "
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


def plot_all(runs: list[SeedRun], config: Any, out_dir: Path) -> list[str]:
    return [
        _plot_widths(runs, config, out_dir),
        _plot_temporal(runs, config, out_dir),
        _plot_quant(runs, out_dir),
        _plot_energy(runs, config, out_dir),
    ]


def _plot_widths(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    keys = list(runs[0].widths)
    mean = np.mean([[r.widths[k] for k in keys] for r in runs], axis=0)  # (rules, layers)
    fig = Figure(figsize=(max(6, 1.1 * len(keys)), 3.6))
    ax = fig.subplots()
    x = np.arange(len(keys))
    n_layers = mean.shape[1]
    for i in range(n_layers):
        off = x + (i - (n_layers - 1) / 2) * 0.8 / n_layers
        ax.bar(off, mean[:, i], 0.8 / n_layers, label=f"hidden layer {i + 1}")
    for i, width in enumerate(config.hidden):
        ax.axhline(width, color=f"C{i}", lw=0.8, ls="--")
    ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="PCA width", title="significant width by PCA'd quantity @ threshold")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_widths.png")
    return "snn_widths.png"


def _plot_temporal(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    ts = [config.t0, *config.stages]
    acc = np.array([[100 * r.staged[t] for t in ts] for r in runs])
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    err = acc.std(axis=0, ddof=1) if len(runs) > 1 else None
    ax.errorbar(ts, acc.mean(0), yerr=err, marker="o", capsize=3, label="staged (pruned SNN)")
    direct = np.array([100 * r.direct_final for r in runs])
    derr = [direct.std(ddof=1)] if len(runs) > 1 else None
    ax.errorbar([ts[-1]], [direct.mean()], yerr=derr, marker="s", capsize=3, color="C3",
                ls="none", label=f"direct at T={ts[-1]}")  # fmt: skip
    ax.set(xscale="log", xlabel="time steps T", ylabel="test accuracy (%)")
    ax.set_title("temporal pruning")
    ax.minorticks_off()
    ax.set_xticks(ts, [str(t) for t in ts])
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_temporal.png")
    return "snn_temporal.png"


def _plot_quant(runs: list[SeedRun], out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    bits = list(runs[0].quant_snn)
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    for name, attr, ref in (("SNN", "quant_snn", "full"), ("ANN", "quant_ann", "ann")):
        acc = np.array([[100 * getattr(r, attr)[b] for b in bits] for r in runs])
        ax.plot(bits, acc.mean(0), marker="o", label=name)
        ax.axhline(100 * np.mean([getattr(r, ref) for r in runs]), lw=0.8, ls="--",
                   color="C0" if name == "SNN" else "C1")  # fmt: skip
    ax.set(xlabel="weight bits", ylabel="test accuracy (%)", title="post-training quantization")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_quantization.png")
    return "snn_quantization.png"


def _plot_energy(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    values = [
        np.mean([r.energy_full["ann_pj"] for r in runs]),
        np.mean([r.energy_full["snn_pj"] for r in runs]),
        np.mean([r.energy_pruned["snn_pj"] for r in runs]),
    ]
    names = ["ANN", f"SNN T={config.t0}", f"pruned SNN T={config.stages[-1]}"]
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    ax.bar(names, np.array(values) / 1e3, color=["C1", "C0", "C2"])
    ax.set(ylabel="energy per inference (nJ)", title="energy proxy (45 nm)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "snn_energy.png")
    return "snn_energy.png"
