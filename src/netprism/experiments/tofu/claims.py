"""Claims and metrics of the ``tofu`` experiment.

Pure summaries of the per-seed records: encoder fidelity (and its rise with the number of
proxies), exact decode, uplink savings and the accuracy they cost, privacy against gradient
inversion, and survival of a malformed and a sign-flipping client; ``privacy_faithful``, the
twin of ``privacy`` on updates of K local steps (read from ``SeedRuns.privacy_faithful`` only,
as ``privacy`` is read from ``SeedRuns.privacy`` only).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from netprism.core.results import Claim, mean_std
from netprism.core.results import format_pm as pm
from netprism.experiments.tofu.records import SeedRuns

METHODS = ("fedavg", "tofu", "hybrid")
RECON_ROWS = ("ig_real", "ig_tofu", "dlg_real", "dlg_tofu", "analytic_real", "analytic_tofu")


def mean_or_nan(values: list[float]) -> float:
    """The mean of ``values``; NaN when there are none."""
    return float(np.mean(values)) if values else float("nan")


def stat_or_nan(values: list[float]) -> tuple[float, float]:
    """:func:`mean_std` of ``values``; ``(NaN, 0.0)`` when there are none."""
    return mean_std(values) if values else (float("nan"), 0.0)


def claims_and_metrics(
    runs: list[SeedRuns], config: Any
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The experiment's claims, flat metrics and same-run baselines."""
    metrics: dict[str, float] = {"seeds": float(len(runs)), "n_params": float(runs[0].n_params)}
    final = {
        m: [r.logs[m].accuracy[-1] for r in runs] for m in (*METHODS, "bad_robust", "bad_mean")
    }
    for m, vals in final.items():
        metrics[f"{m}_acc"], metrics[f"{m}_acc_std"] = stat_or_nan(vals)
    for m in METHODS:
        metrics[f"{m}_uplink_bytes"] = mean_or_nan(
            [float(sum(r.logs[m].uplink_bytes)) for r in runs]
        )
        metrics[f"{m}_downlink_bytes"] = mean_or_nan(
            [float(sum(r.logs[m].downlink_bytes)) for r in runs]
        )
    claims = [
        *_fidelity_claims(runs, config, metrics),
        _decode_claim(runs, config, metrics),
        *_comm_claims(runs, config, metrics, final),
        _privacy_claim(runs, config, metrics),
        _bad_claim(runs, config, metrics, final),
    ]
    if twins := [r for r in runs if r.privacy_faithful]:  # faithful_seeds
        claims.append(_privacy_claim_faithful(twins, config, metrics))
    baselines = {
        "fedavg": {
            "accuracy": metrics["fedavg_acc"],
            "uplink_bytes": metrics["fedavg_uplink_bytes"],
        },
        "tofu_only": {
            "accuracy": metrics["tofu_acc"],
            "uplink_bytes": metrics["tofu_uplink_bytes"],
        },
        "bad_clients_plain_mean": {"accuracy": metrics["bad_mean_acc"]},
    }
    return claims, metrics, baselines


def _fidelity_claims(runs: list[SeedRuns], config: Any, metrics: dict[str, float]) -> list[Claim]:
    per_seed = [mean_or_nan([c for rnd in r.logs["tofu"].cosines for c in rnd]) for r in runs]
    mean_cos, std_cos = stat_or_nan(per_seed)
    metrics["encoder_cosine"], metrics["encoder_cosine_std"] = mean_cos, std_cos
    sweep = [
        mean_or_nan([mean_or_nan(r.fidelity[n]) for r in runs]) for n in config.fidelity_proxies
    ]
    for n, v in zip(config.fidelity_proxies, sweep):
        metrics[f"fidelity_cosine_n{n}"] = v
    steps = [b - a for a, b in zip(sweep, sweep[1:])]
    rise = min(steps) if steps else float("nan")
    curve = ", ".join(f"N={n}: {v:.3f}" for n, v in zip(config.fidelity_proxies, sweep))
    return [
        Claim(
            "encoder_fidelity",
            f"mean cos(U_syn, U_real) >= {config.min_fidelity} over honest clients and TOFU "
            f"rounds, N={config.n_proxy}, {config.encoder_steps} Adam steps "
            f"({pm((mean_cos, std_cos), 3)}, {len(runs)} seeds)",
            mean_cos,
            config.min_fidelity,
            ">=",
        ),
        Claim(
            "encoder_fidelity_rising",
            f"fidelity rises with the number of proxies (re-encoded FedAvg updates: {curve}); "
            "measured = smallest rise between consecutive N",
            rise,
            0.0,
            ">",
        ),
    ]


def _decode_claim(runs: list[SeedRuns], config: Any, metrics: dict[str, float]) -> Claim:
    errs = [e for r in runs for m in ("tofu", "hybrid") for e in r.logs[m].decode_errors]
    worst = max(errs) if errs else float("nan")
    metrics["decode_max_abs_error"] = worst
    return Claim(
        "decode_exact",
        "the server's decode from the transmitted float32 (x, soft labels, alpha, scale) "
        f"reproduces the client's decoded update (max |difference|, tolerance {config.decode_tol})",
        worst,
        config.decode_tol,
        "<=",
    )


def _comm_claims(
    runs: list[SeedRuns], config: Any, metrics: dict[str, float], final: dict[str, list[float]]
) -> list[Claim]:
    ratios = [sum(r.logs["fedavg"].uplink_bytes) / sum(r.logs["hybrid"].uplink_bytes) for r in runs]
    metrics["comm_ratio"] = ratio = mean_or_nan(ratios)
    metrics["comm_ratio_tofu_only"] = mean_or_nan(
        [sum(r.logs["fedavg"].uplink_bytes) / sum(r.logs["tofu"].uplink_bytes) for r in runs]
    )
    gaps = [h - f for h, f in zip(final["hybrid"], final["fedavg"])]
    tofu_gaps = [t - f for t, f in zip(final["tofu"], final["fedavg"])]
    gap, gap_std = stat_or_nan(gaps)
    metrics["hybrid_gap"], metrics["hybrid_gap_std"] = gap, gap_std
    metrics["tofu_gap"], metrics["tofu_gap_std"] = stat_or_nan(tofu_gaps)
    rounds = f"{config.rounds - config.full_rounds} TOFU + {config.full_rounds} full rounds"
    return [
        Claim(
            "comm_ratio",
            f"total uplink bytes FedAvg / TOFU hybrid ({rounds}) >= {config.min_comm_ratio}x "
            f"(paper: 4x on MNIST); TOFU only: {metrics['comm_ratio_tofu_only']:.2f}x",
            ratio,
            config.min_comm_ratio,
            ">=",
        ),
        Claim(
            "comm_accuracy_gap",
            f"hybrid final accuracy within {config.max_acc_gap} points of FedAvg "
            f"({gap:+.2f} +- {gap_std:.2f}; TOFU only {metrics['tofu_gap']:+.2f}; "
            f"{len(runs)} seeds)",
            gap,
            -config.max_acc_gap,
            ">=",
            baseline=metrics["fedavg_acc"],
            baseline_name="FedAvg accuracy",
        ),
    ]


def _privacy_claim(runs: list[SeedRuns], config: Any, metrics: dict[str, float]) -> Claim:
    for b in sorted(runs[0].privacy):
        for row in RECON_ROWS:
            q = [r.privacy[b].quality[row] for r in runs if row in r.privacy[b].quality]
            metrics[f"b{b}_{row}_mse"] = mean_or_nan([v["mse"] for v in q])
            metrics[f"b{b}_{row}_psnr"] = mean_or_nan([v["psnr"] for v in q])
        for att in ("ig", "dlg", "analytic"):
            real, tofu = metrics[f"b{b}_{att}_real_mse"], metrics[f"b{b}_{att}_tofu_mse"]
            metrics[f"b{b}_{att}_mse_ratio"] = tofu / real if real > 0 else math.inf
        metrics[f"b{b}_ig_tofu_mse_to_proxy"] = mean_or_nan(
            [r.privacy[b].quality["ig_tofu_to_proxy"] for r in runs]
        )
        for key in ("mse", "psnr"):
            metrics[f"b{b}_proxy_to_true_{key}"] = mean_or_nan(
                [r.privacy[b].quality["proxy_to_true"][key] for r in runs]
            )
    b = config.attack_batch
    ratio = metrics[f"b{b}_ig_mse_ratio"]
    psnr_gap = metrics[f"b{b}_ig_real_psnr"] - metrics[f"b{b}_ig_tofu_psnr"]
    return Claim(
        "privacy",
        f"Inverting Gradients on the real update vs the TOFU-decoded update, B={b}: best-match "
        f"MSE ratio (TOFU / real) >= {config.min_mse_ratio} (PSNR gap {psnr_gap:+.1f} dB; DLG "
        f"ratio {metrics[f'b{b}_dlg_mse_ratio']:.2f}; B=1, the known failure: IG ratio "
        f"{metrics['b1_ig_mse_ratio']:.2f}; the sent proxies' best match to the true batch: "
        f"{metrics[f'b{b}_proxy_to_true_psnr']:.1f} dB)",
        ratio,
        config.min_mse_ratio,
        ">=",
    )


def _bad_claim(
    runs: list[SeedRuns], config: Any, metrics: dict[str, float], final: dict[str, list[float]]
) -> Claim:
    n = config.n_clients - 2  # index of the malformed client
    rejected_every_round = all(n in rnd for r in runs for rnd in r.logs["bad_robust"].rejected)
    completed = all(len(r.logs["bad_robust"].accuracy) == config.rounds for r in runs)
    gaps = [b - c for b, c in zip(final["bad_robust"], final["fedavg"])]
    gap, std = stat_or_nan(gaps)
    metrics["bad_robust_gap"], metrics["bad_robust_gap_std"] = gap, std
    metrics["bad_mean_gap"] = mean_or_nan(
        [b - c for b, c in zip(final["bad_mean"], final["fedavg"])]
    )
    metrics["bad_malformed_rejected_every_round"] = float(rejected_every_round)
    ok = rejected_every_round and completed
    return Claim(
        "bad_client_survived",
        f"with one {config.malformed} and one sign-flipping client every round completes, the "
        f"malformed update is rejected{'' if ok else ' (NOT every round: measured = NaN)'}, "
        f"and {config.aggregator} keeps accuracy within {config.max_bad_gap} points of clean "
        f"FedAvg ({gap:+.2f} +- {std:.2f}; plain mean {metrics['bad_mean_gap']:+.2f})",
        gap if ok else float("nan"),
        -config.max_bad_gap,
        ">=",
        baseline=metrics["fedavg_acc"],
        baseline_name="clean FedAvg accuracy",
    )


def faithful_values(quality: dict[str, Any]) -> dict[str, float]:
    """The numbers one (round, K) point of ``privacy_faithful`` reports, from its quality."""
    return {
        "ig_real_mse": quality["ig_real"]["mse"],
        "ig_real_psnr": quality["ig_real"]["psnr"],
        "ig_tofu_mse": quality["ig_tofu"]["mse"],
        "ig_tofu_psnr": quality["ig_tofu"]["psnr"],
        "proxy_best_match_psnr": quality["proxy_best_match"]["psnr"],  # each proxy
        "proxy_to_true_psnr": quality["proxy_to_true"]["psnr"],  # each true image
        "encoder_cosine": quality["encoder_cosine"],
        "one_step_cosine": quality["one_step_cosine"],
    }


def faithful_metrics(runs: list[SeedRuns], metrics: dict[str, float]) -> list[tuple[int, int]]:
    """Seed means of :func:`faithful_values` and the MSE ratio (decoded / real, of the mean
    MSEs, as ``privacy``) as ``faithful_r{round}_k{K}_*`` metrics; returns the (round, K)."""
    points = sorted(runs[0].privacy_faithful)
    for r, k in points:
        values = [faithful_values(run.privacy_faithful[(r, k)].quality) for run in runs]
        for key in values[0]:
            metrics[f"faithful_r{r}_k{k}_{key}"] = mean_or_nan([v[key] for v in values])
        real, tofu = (
            metrics[f"faithful_r{r}_k{k}_ig_real_mse"],
            metrics[f"faithful_r{r}_k{k}_ig_tofu_mse"],
        )
        metrics[f"faithful_r{r}_k{k}_ig_mse_ratio"] = tofu / real if real > 0 else math.inf
    return points


def _privacy_claim_faithful(runs: list[SeedRuns], config: Any, metrics: dict[str, float]) -> Claim:
    """``privacy`` on an update of ``privacy_faithful_k`` local steps at round 0, diagnosed by
    how the proxies' and the attacks' PSNRs move with K."""
    points = faithful_metrics(runs, metrics)
    k, b = config.privacy_faithful_k, config.attack_batch

    def at(r: int, kk: int, key: str) -> float:
        return metrics[f"faithful_r{r}_k{kk}_{key}"]

    def psnrs(r: int, kk: int) -> str:
        return (
            f"proxies {at(r, kk, 'proxy_best_match_psnr'):.1f} dB per proxy / "
            f"{at(r, kk, 'proxy_to_true_psnr'):.1f} dB per true image, IG real "
            f"{at(r, kk, 'ig_real_psnr'):.1f} dB, IG decoded {at(r, kk, 'ig_tofu_psnr'):.1f} dB "
            f"(ratio {at(r, kk, 'ig_mse_ratio'):.2f}, encoder cosine "
            f"{at(r, kk, 'encoder_cosine'):.3f}, update vs one step cosine "
            f"{at(r, kk, 'one_step_cosine'):.3f})"
        )

    ratio = at(0, k, "ig_mse_ratio")
    rounds = sorted({r for r, _ in points})
    steps = sorted({kk for _, kk in points})
    claim = Claim(
        "privacy_faithful",
        f"Inverting Gradients on the real vs the TOFU-decoded update made of K={k} local SGD "
        f"steps of B={b} images each ({b * k} images) at the initial weights: best-match MSE "
        f"ratio (TOFU / real) >= {config.min_mse_ratio} (PSNR real "
        f"{at(0, k, 'ig_real_psnr'):.1f} dB, decoded {at(0, k, 'ig_tofu_psnr'):.1f} dB; "
        f"{len(runs)} seeds)",
        ratio,
        config.min_mse_ratio,
        ">=",
    )
    claim.settings = {
        "local_steps": k,
        "true_images": b * k,
        "ig_batch_size": b * k,
        "local_batch_size": b,
        "weights_round": 0,
        "swept_local_steps": list(steps),
        "swept_rounds": list(rounds),
    }
    claim.seeds = [r.seed for r in runs]
    lines = [f"at K={k}, round 0: {psnrs(0, k)}"]
    for r in rounds:
        lines.append(f"round {r}, K=" + "/".join(map(str, steps)) + ": " + _trend(at, r, steps))
    claim.diagnosis = "; ".join(lines)
    return claim


def _trend(at: Any, r: int, steps: list[int]) -> str:
    """How the proxies' and the attacks' PSNRs (dB) and the ratio change with K at round ``r``."""
    series = (
        ("proxies per proxy", "proxy_best_match_psnr", "{:.1f}"),
        ("IG real", "ig_real_psnr", "{:.1f}"),
        ("IG decoded", "ig_tofu_psnr", "{:.1f}"),
        ("ratio", "ig_mse_ratio", "{:.2f}"),
        ("encoder cosine", "encoder_cosine", "{:.3f}"),
    )
    return ", ".join(
        f"{name} " + "/".join(fmt.format(at(r, k, key)) for k in steps) for name, key, fmt in series
    )
