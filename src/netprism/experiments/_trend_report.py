"""Claims, metrics and figures of the ``trend`` experiment (see :mod:`netprism.experiments.trend`).

Pure summaries of the per-seed runs: three claims (transfer orderings, gradient domination,
the TREND ensemble's robustness) and four figures (mean TM heatmap, attack success against
eps, robust accuracy of candidate ensembles, ensemble-attack success with a scaled member).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netprism.experiments.base import Claim, mean_std
from netprism.robustness.ensemble import MODE_NAMES, MODES

MIN_SEEDS = 3  # the orderings claim asks for >= 3 seeds


@dataclass
class Candidate:
    """A hard-vote ensemble: its members, clean accuracy, robust accuracy per ensemble attack."""

    members: list[str]
    clean: float
    robust: dict[str, float]  # mode -> accuracy under that attack at attack_eps

    @property
    def worst(self) -> float:
        """Robust accuracy under the strongest of the ensemble attacks."""
        return min(self.robust.values())


@dataclass
class SeedRun:
    seed: int
    names: list[str]
    clean: dict[str, float]
    tm: list[list[float]]  # (M, M) intended TM at tm_eps
    tm_official: list[list[float]]  # the released script's formula
    fraction: list[list[list[float]]]  # (M, M, E) N_transfer / N_common
    success: list[list[float]]  # (M, E) white-box PGD success
    single_robust: dict[str, float]  # white-box PGD accuracy at attack_eps
    candidates: dict[str, Candidate]
    domination: dict[str, Any]
    curves: dict[str, list[float]]

    def pair(self, source: str, target: str) -> float:
        return float(self.tm[self.names.index(source)][self.names.index(target)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pm(stat: tuple[float, float], scale: float = 1.0) -> str:
    return f"{scale * stat[0]:.2f} +- {scale * stat[1]:.2f}"


def claims_and_metrics(
    runs: list[SeedRun], config: Any
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The three claims, flat metrics and baselines (accuracies and successes in points)."""
    metrics: dict[str, float] = {"n_seeds": float(len(runs))}
    for name in runs[0].names:
        metrics[f"clean_{name}"] = 100 * mean_std([r.clean[name] for r in runs])[0]
        metrics[f"pgd_robust_{name}"] = 100 * mean_std([r.single_robust[name] for r in runs])[0]
        if name != "fp":
            metrics[f"tm_fp_to_{name}"] = mean_std([r.pair("fp", name) for r in runs])[0]
            metrics[f"tm_{name}_to_fp"] = mean_std([r.pair(name, "fp") for r in runs])[0]
    claim1 = _claim_transfer(runs, metrics, config)
    claim2 = _claim_domination(runs, metrics, config)
    claim3, baselines = _claim_design(runs, metrics, config)
    return [claim1, claim2, claim3], metrics, baselines


def _claim_transfer(runs: list[SeedRun], metrics: dict[str, float], config: Any) -> Claim:
    tm = {t: mean_std([r.pair("fp", t) for r in runs]) for t in runs[0].names if t != "fp"}
    margins = {t: tm["fp_init"][0] - tm[t][0] for t in ("q1", "q2", "lenet")}
    per_seed = sum(all(r.pair("fp", "fp_init") > r.pair("fp", t) for t in margins) for r in runs)
    worst = min(margins, key=lambda t: margins[t])
    metrics["tm_min_margin"] = margins[worst]
    enough = len(runs) >= MIN_SEEDS
    others = ", ".join(f"fp->{t} {_pm(s)}" for t, s in tm.items())
    return Claim(
        id="quantization_cuts_transfer",
        text=f"input quantisation and architecture mismatch reduce transferability, "
        f"initialisation does not: mean TM over {len(runs)} seeds at eps={config.tm_eps:g} "
        f"(PGD, {config.steps} steps): {others}; all three orderings TM(fp->fp_init) > "
        f"TM(fp->q1), TM(fp->q2), TM(fp->lenet) hold in {per_seed} of {len(runs)} seeds; "
        f"measured = the smallest mean margin TM(fp->fp_init) - TM(fp->t) (t = {worst})"
        + ("" if enough else f"; not assessed: needs >= {MIN_SEEDS} seeds")
        + ". Optimiser (adam), halftoning (ht) and weight/activation quantisation (wq) are "
        "reported, not asserted",
        measured=margins[worst] if enough else float("nan"),
        target=0.0,
        op=">",
        baseline=tm["fp_init"][0],
        baseline_name="TM(fp->fp_init), other initialisation",
    )


def _claim_domination(runs: list[SeedRun], metrics: dict[str, float], config: Any) -> Claim:
    members = runs[0].domination["members"]
    drops: dict[str, list[float]] = {m: [] for m in MODES}
    for r in runs:
        for mode in MODES:
            s = r.domination["success"][mode]  # [unscaled, scaled member 0, 1, ...]
            drops[mode] += [100 * (s[0] - v) for v in s[1:]]
    stats = {m: mean_std([100 * r.domination["success"][m][0] for r in runs]) for m in MODES}
    scaled = {
        m: mean_std([100 * v for r in runs for v in r.domination["success"][m][1:]]) for m in MODES
    }
    for m in MODES:
        metrics[f"domination_{m}_success"] = stats[m][0]
        metrics[f"domination_{m}_success_scaled"] = scaled[m][0]
    identical = all(r.domination["agd_step_identical"] for r in runs)
    agree_s = 100 * float(np.mean([a for r in runs for a in r.domination["dag_agree_scaled"]]))
    agree_p = 100 * float(np.mean([a for r in runs for a in r.domination["dag_agree_unscaled"]]))
    metrics["agd_step_identical"] = float(identical)
    metrics["dag_agree_with_scaled_member"] = agree_s
    metrics["dag_agree_with_member_unscaled"] = agree_p
    dag_drop, agd_drop = float(np.mean(drops["avg"])), float(np.mean(drops["sign_avg"]))
    # "Collapses" read as: D-AG loses at least half of its success rate (relative), A-GD none.
    dag_rel = dag_drop / stats["avg"][0] if stats["avg"][0] > 0 else float("nan")
    agd_rel = agd_drop / stats["sign_avg"][0] if stats["sign_avg"][0] > 0 else float("nan")
    table = "; ".join(f"{MODE_NAMES[m]} {_pm(stats[m])} -> {_pm(scaled[m])}" for m in MODES)
    return Claim(
        id="gradient_domination",
        text=f"with one member's loss (so its gradient) scaled by {config.domination_scale:g}, "
        f"the average-gradient attack's success collapses while the proposed attack's does "
        f"not: hard-vote ensemble {{{', '.join(members)}}}, PGD eps={config.attack_eps:g}, "
        f"{config.steps} steps, success on ensemble-correct samples (%) unscaled -> scaled "
        f"(each member in turn, {len(runs)} seeds): {table}; A-GD step bit-identical after "
        f"scaling: {identical}; the D-AG step equals the scaled member's sign on "
        f"{agree_s:.2f} % of pixels (unscaled {agree_p:.2f} %). 'Collapses' is read as losing at "
        f"least half of the success rate: D-AG loses {100 * dag_rel:.1f} % of it "
        f"({dag_drop:.1f} points), A-GD {100 * agd_rel:.1f} % ({agd_drop:.1f} points); the "
        f"ordering alone (D-AG drops more) {'holds' if dag_drop > agd_drop else 'fails'}. "
        "measured = relative D-AG drop minus relative A-GD drop (the 0.5 threshold was set after "
        "the first run, to the issue's word, not to make the claim hold)",
        measured=dag_rel - agd_rel,
        target=0.5,
        op=">=",
        baseline=agd_drop,
        baseline_name="A-GD success drop (points)",
    )


def _claim_design(
    runs: list[SeedRun], metrics: dict[str, float], config: Any
) -> tuple[Claim, dict[str, dict[str, float]]]:
    trend, best_member, random_mean, gaps = [], [], [], []
    for r in runs:
        t = r.candidates["TREND"]
        b = max(r.single_robust[n] for n in t.members)
        rnd = float(np.mean([c.worst for k, c in r.candidates.items() if k.startswith("random")]))
        trend.append(100 * t.worst)
        best_member.append(100 * b)
        random_mean.append(100 * rnd)
        gaps.append(100 * (t.worst - max(b, rnd)))
    fp_q = mean_std([100 * r.candidates["fp+q1+q2"].worst for r in runs])
    clean_drop = mean_std(
        [
            100
            * (max(r.clean[n] for n in r.candidates["TREND"].members) - r.candidates["TREND"].clean)
            for r in runs
        ]
    )
    chosen = "; ".join(f"seed {r.seed}: {'+'.join(r.candidates['TREND'].members)}" for r in runs)
    metrics.update(
        trend_robust=mean_std(trend)[0],
        trend_best_member_robust=mean_std(best_member)[0],
        trend_random_robust=mean_std(random_mean)[0],
        trend_clean_drop=clean_drop[0],
        fp_q1_q2_robust=fp_q[0],
    )
    baselines = {
        "best_single_member": {"robust_accuracy": mean_std(best_member)[0]},
        "random_ensemble": {"robust_accuracy": mean_std(random_mean)[0]},
        "fp_q1_q2_ensemble": {"robust_accuracy": fp_q[0]},
    }
    claim = Claim(
        id="diverse_ensemble_robust",
        text=f"the TREND-selected ensemble (lowest mean mutual TM; {chosen}) is more robust "
        f"under the strongest ensemble attack (min over D-AG, A-GD, U-GD; eps="
        f"{config.attack_eps:g}, {config.steps} steps) than any single member (white-box PGD) "
        f"and than a random ensemble of the same size: robust accuracy {_pm(mean_std(trend))} "
        f"vs best member {_pm(mean_std(best_member))} vs random ensembles "
        f"{_pm(mean_std(random_mean))} (%, {len(runs)} seeds, {config.n_random} random "
        f"ensembles each); fp+q1+q2 {_pm(fp_q)}; clean accuracy drop vs its best member "
        f"{_pm(clean_drop)} points; measured = mean over seeds of TREND minus the better of "
        "the two baselines (points)",
        measured=float(np.mean(gaps)),
        target=0.0,
        op=">",
        baseline=float(np.mean([max(b, q) for b, q in zip(best_member, random_mean)])),
        baseline_name="max(best member, random ensemble)",
    )
    return claim, baselines


# --------------------------------------------------------------------------- figures


def plot_all(runs: list[SeedRun], config: Any, out_dir: Path) -> list[str]:
    """Write the four figures into ``out_dir``; return their file names."""
    return [
        _plot_heatmap(runs, config, out_dir),
        _plot_curves(runs, config, out_dir),
        _plot_candidates(runs, config, out_dir),
        _plot_domination(runs, config, out_dir),
    ]


def _plot_heatmap(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    names = runs[0].names
    tm = np.nanmean(np.array([r.tm for r in runs], dtype=float), axis=0)  # (M, M)
    fig = Figure(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.55 * len(names)))
    ax = fig.subplots()
    im = ax.imshow(tm, vmin=0, vmax=1, cmap="magma")
    for (i, j), v in np.ndenumerate(tm):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="black" if v > 0.6 else "white",
        )
    ax.set_xticks(range(len(names)), names, rotation=45)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="target", ylabel="source")
    ax.set_title(f"TM at eps={config.tm_eps:g} (mean of {len(runs)} seeds)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_tm_heatmap.png")
    return "trend_tm_heatmap.png"


def _plot_curves(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for name in runs[0].curves:
        vals = 100 * np.array([r.curves[name] for r in runs])  # (seeds, E)
        label = name
        for mode, short in MODE_NAMES.items():
            label = label.replace(f" {mode}", f", {short}")
        ls = "--" if name.startswith("TREND") else "-"
        ax.plot(config.eps, vals.mean(0), ls, marker="o", label=label)
    ax.set(xlabel="eps (L-inf, [0, 1] pixels)", ylabel="attack success (%)", ylim=(0, 102))
    ax.set_title("single fp model (solid) and TREND ensemble (dashed)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_attack_success.png")
    return "trend_attack_success.png"


def _plot_candidates(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    rows: dict[str, list[float]] = {}
    for label in ("TREND", "fp+q1+q2"):
        rows[label] = [
            100 * float(np.mean([r.candidates[label].robust[m] for r in runs])) for m in MODES
        ]
    rows["random (mean)"] = [
        100
        * float(
            np.mean(
                [
                    c.robust[m]
                    for r in runs
                    for k, c in r.candidates.items()
                    if k.startswith("random")
                ]
            )
        )
        for m in MODES
    ]
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    x = np.arange(len(rows) + len(runs[0].names))
    width = 0.25
    for i, mode in enumerate(MODES):
        vals = [v[i] for v in rows.values()]
        ax.bar(x[: len(rows)] + (i - 1) * width, vals, width, label=MODE_NAMES[mode])
    singles = [100 * float(np.mean([r.single_robust[n] for r in runs])) for n in runs[0].names]
    ax.bar(x[len(rows) :], singles, 0.6, color="grey", label="single (PGD)")
    ax.set_xticks(x, [*rows, *runs[0].names], rotation=45)
    ax.set(ylabel=f"robust accuracy at eps={config.attack_eps:g} (%)", ylim=(0, 100))
    ax.set_title(f"candidate ensembles vs single models ({len(runs)} seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_candidate_ensembles.png")
    return "trend_candidate_ensembles.png"


def _plot_domination(runs: list[SeedRun], config: Any, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    members = runs[0].domination["members"]
    labels = ["none", *[f"{m} x{config.domination_scale:g}" for m in members]]
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    x = np.arange(len(labels))
    for i, mode in enumerate(MODES):
        vals = 100 * np.array([r.domination["success"][mode] for r in runs]).mean(0)
        ax.bar(x + (i - 1) * 0.25, vals, 0.25, label=MODE_NAMES[mode])
    ax.set_xticks(x, labels)
    ax.set(xlabel="scaled member loss", ylabel="ensemble attack success (%)", ylim=(0, 100))
    ax.set_title(f"gradient domination on {{{', '.join(members)}}}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, out_dir / "trend_gradient_domination.png")
    return "trend_gradient_domination.png"
