"""Claims and metrics of the ``trend`` experiment.

Pure summaries of the per-seed records: three claims (transfer orderings, gradient
domination, the TREND ensemble's robustness), the faithful twin of gradient domination (on
the TREND-selected ensemble, the paper's setting) and of the ensemble's robustness (designed
at the attack's eps, 40-step attacks, every ensemble of the pool attacked), accuracies and
successes in points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from netprism.core.results import Claim, mean_std
from netprism.core.results import format_pm as pm
from netprism.experiments.trend.records import SeedRun
from netprism.robustness.ensemble import MODE_NAMES, MODES

MIN_SEEDS = 3  # the orderings claim asks for >= 3 seeds


def claims_and_metrics(
    runs: list[SeedRun], config: Any
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The claims, flat metrics and baselines (accuracies and successes in points)."""
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
    claims = [claim1, claim2, claim3]
    if twins := [r for r in runs if r.design_faithful]:  # faithful_seeds
        claims.append(_domination_faithful(twins, metrics, config))
        claims.append(_design_faithful(twins, metrics, config))
    return claims, metrics, baselines


def _claim_transfer(runs: list[SeedRun], metrics: dict[str, float], config: Any) -> Claim:
    tm = {t: mean_std([r.pair("fp", t) for r in runs]) for t in runs[0].names if t != "fp"}
    margins = {t: tm["fp_init"][0] - tm[t][0] for t in ("q1", "q2", "lenet")}
    per_seed = sum(all(r.pair("fp", "fp_init") > r.pair("fp", t) for t in margins) for r in runs)
    worst = min(margins, key=lambda t: margins[t])
    metrics["tm_min_margin"] = margins[worst]
    enough = len(runs) >= MIN_SEEDS
    others = ", ".join(f"fp->{t} {pm(s, 2)}" for t, s in tm.items())
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


def _claim_domination(
    runs: list[SeedRun], metrics: dict[str, float], config: Any, key: str = "domination"
) -> Claim:
    records = [getattr(r, key) for r in runs]
    named = {records[0]["members"] == r["members"] for r in records} == {True}
    members = ", ".join(records[0]["members"]) if named else "TREND-selected, per seed"
    steps = records[0].get("steps", config.steps)
    drops: dict[str, list[float]] = {m: [] for m in MODES}
    for d in records:
        for mode in MODES:
            s = d["success"][mode]  # [unscaled, scaled member 0, 1, ...]
            drops[mode] += [100 * (s[0] - v) for v in s[1:]]
    stats = {m: mean_std([100 * d["success"][m][0] for d in records]) for m in MODES}
    scaled = {m: mean_std([100 * v for d in records for v in d["success"][m][1:]]) for m in MODES}
    for m in MODES:
        metrics[f"{key}_{m}_success"] = stats[m][0]
        metrics[f"{key}_{m}_success_scaled"] = scaled[m][0]
    identical = all(d["agd_step_identical"] for d in records)
    agree_s = 100 * float(np.mean([a for d in records for a in d["dag_agree_scaled"]]))
    agree_p = 100 * float(np.mean([a for d in records for a in d["dag_agree_unscaled"]]))
    prefix = "" if key == "domination" else f"{key}_"
    metrics[f"{prefix}agd_step_identical"] = float(identical)
    metrics[f"{prefix}dag_agree_with_scaled_member"] = agree_s
    metrics[f"{prefix}dag_agree_with_member_unscaled"] = agree_p
    dag_drop, agd_drop = float(np.mean(drops["avg"])), float(np.mean(drops["sign_avg"]))
    # "Collapses" read as: D-AG loses at least half of its success rate (relative), A-GD none.
    dag_rel = dag_drop / stats["avg"][0] if stats["avg"][0] > 0 else float("nan")
    agd_rel = agd_drop / stats["sign_avg"][0] if stats["sign_avg"][0] > 0 else float("nan")
    table = "; ".join(f"{MODE_NAMES[m]} {pm(stats[m], 2)} -> {pm(scaled[m], 2)}" for m in MODES)
    return Claim(
        id="gradient_domination" if key == "domination" else "gradient_domination_faithful",
        text=f"with one member's loss (so its gradient) scaled by {config.domination_scale:g}, "
        f"the average-gradient attack's success collapses while the proposed attack's does "
        f"not: hard-vote ensemble {{{members}}}, PGD eps={config.attack_eps:g}, "
        f"{steps} steps, success on ensemble-correct samples (%) unscaled -> scaled "
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
        f"and than a random ensemble of the same size: robust accuracy {pm(mean_std(trend), 2)} "
        f"vs best member {pm(mean_std(best_member), 2)} vs random ensembles "
        f"{pm(mean_std(random_mean), 2)} (%, {len(runs)} seeds, {config.n_random} random "
        f"ensembles each); fp+q1+q2 {pm(fp_q, 2)}; clean accuracy drop vs its best member "
        f"{pm(clean_drop, 2)} points; measured = mean over seeds of TREND minus the better of "
        "the two baselines (points)",
        measured=float(np.mean(gaps)),
        target=0.0,
        op=">",
        baseline=float(np.mean([max(b, q) for b, q in zip(best_member, random_mean)])),
        baseline_name="max(best member, random ensemble)",
    )
    return claim, baselines


def mutual_tm(run: SeedRun, members: list[str]) -> float:
    """Mean transferability over the ordered pairs of ``members`` (at ``tm_eps``)."""
    return float(np.mean([run.pair(a, b) for a in members for b in members if a != b]))


def _domination_faithful(runs: list[SeedRun], metrics: dict[str, float], config: Any) -> Claim:
    """``gradient_domination`` on the TREND-selected ensemble (the paper's setting: members of
    low mutual transferability), the paper's 40 steps; diagnosed by how far an attack on one
    member alone already fools each ensemble."""
    claim = _claim_domination(runs, metrics, config, key="domination_faithful")
    parts = {}
    for key in ("domination", "domination_faithful"):
        records = [(r, getattr(r, key)) for r in runs]
        tm = float(np.mean([mutual_tm(r, d["members"]) for r, d in records]))
        solo = 100 * float(np.mean([s for _, d in records for s in d["solo_success"]]))
        dag = 100 * float(np.mean([d["success"]["avg"][0] for _, d in records]))
        metrics[f"{key}_mutual_tm"], metrics[f"{key}_solo_success"] = tm, solo
        parts[key] = (tm, solo, dag)
    (tm0, solo0, dag0), (tm1, solo1, dag1) = parts["domination"], parts["domination_faithful"]
    claim.settings = {
        "ensemble": "TREND-selected per seed",
        "steps": config.domination_faithful_steps,
    }
    claim.seeds = [r.seed for r in runs]
    claim.diagnosis = (
        f"a D-AG step dominated by one member is that member's own attack, so D-AG keeps what "
        f"one member's attack achieves on the ensemble: {{fp, q1, q2}} has mean mutual TM "
        f"{tm0:.2f} and a single-member PGD fools it on {solo0:.1f} % (D-AG {dag0:.1f} %); "
        f"the TREND ensemble has mutual TM {tm1:.2f}, single-member PGD {solo1:.1f} % "
        f"(D-AG {dag1:.1f} %)"
    )
    return claim


def _worst(candidate: dict[str, Any]) -> float:
    return min(candidate["robust"].values())


def ensemble_points(run: SeedRun) -> dict[str, tuple[float, float]]:
    """Every ensemble the faithful design study attacked: ``"a+b+c"`` -> (its mean mutual TM
    at the attack's eps, its robust accuracy (%) under the strongest ensemble attack)."""
    d = run.design_faithful
    index = {n: i for i, n in enumerate(run.names)}
    out = {}
    for key, candidate in d["ensembles"].items():
        members = [index[n] for n in key.split("+")]
        tm = float(np.mean([d["tm"][i][j] for i in members for j in members if i != j]))
        out[key] = (tm, 100 * _worst(candidate))
    return out


def _design_faithful(runs: list[SeedRun], metrics: dict[str, float], config: Any) -> Claim:
    """``diverse_ensemble_robust`` with the design read at the attack's eps and 40-step
    attacks; diagnosed by how mutual transferability ranks every ensemble of the pool."""
    from netprism.core.metrics import spearman

    trend: list[float] = []
    best: list[float] = []
    rand: list[float] = []
    gaps: list[float] = []
    mutual: list[float] = []
    robust: list[float] = []
    ranks: list[int] = []
    for r in runs:
        d = r.design_faithful
        key = "+".join(d["members"])
        t = 100 * _worst(d["ensembles"][key])
        b = 100 * max(d["single_robust"][n] for n in d["members"])
        randoms = ["+".join(c.members) for k, c in r.candidates.items() if k.startswith("random")]
        q = 100 * float(np.mean([_worst(d["ensembles"][k]) for k in randoms]))
        for values, v in ((trend, t), (best, b), (rand, q), (gaps, t - max(b, q))):
            values.append(v)
        points = ensemble_points(r).values()
        mutual += [tm for tm, _ in points]
        robust += [acc for _, acc in points]
        ranks.append(1 + sum(acc > t for _, acc in points))
    rho = spearman(torch.tensor(mutual), torch.tensor(robust))
    n_ens = len(runs[0].design_faithful["ensembles"])
    metrics.update(
        design_faithful_trend_robust=mean_std(trend)[0],
        design_faithful_best_member_robust=mean_std(best)[0],
        design_faithful_random_robust=mean_std(rand)[0],
        design_faithful_spearman_tm_robust=rho,
    )
    chosen = "; ".join(f"seed {r.seed}: {'+'.join(r.design_faithful['members'])}" for r in runs)
    claim = Claim(
        id="diverse_ensemble_robust_faithful",
        text=f"the TREND-selected ensemble, designed at the attack's eps ({chosen}), is more "
        f"robust under the strongest ensemble attack (eps={config.attack_eps:g}, "
        f"{config.design_faithful_steps} steps) than any single member and than a random "
        f"ensemble of the same size: {pm(mean_std(trend), 2)} vs best member "
        f"{pm(mean_std(best), 2)} vs random {pm(mean_std(rand), 2)} (%, {len(runs)} seeds); "
        "measured = mean over seeds of TREND minus the better of the two baselines (points)",
        measured=float(np.mean(gaps)),
        target=0.0,
        op=">",
        baseline=float(np.mean([max(b, q) for b, q in zip(best, rand)])),
        baseline_name="max(best member, random ensemble)",
    )
    claim.settings = {
        "tm_eps": config.attack_eps, "steps": config.design_faithful_steps,
    }  # fmt: skip
    claim.seeds = [r.seed for r in runs]
    claim.diagnosis = (
        f"over all {n_ens} ensembles of {config.ensemble_size} per seed, Spearman {rho:+.2f} "
        f"between mean mutual TM and robust accuracy (negative: less transfer, more robust); "
        f"the TREND pick ranks {', '.join(map(str, ranks))} of {n_ens} by robust accuracy"
    )
    return claim
