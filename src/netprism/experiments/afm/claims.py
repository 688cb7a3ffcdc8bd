"""Claims and metrics of the ``afm`` experiment.

Pure summaries of the measured numbers.  Every target is fixed before the run: the exact
identities (KV 5/8, syncs L/D, the local/global KV formula, 100 % schema validity) and two
fractions stated in the config (QAT closes at least ``qat_min_fraction`` of the best PTQ
variant's gap; LoRA keeps at least ``lora_min_fraction_of_full`` of full fine-tuning's drop).
When ``faithful_seeds`` ran, ``lora_adapts_faithful`` is the same target on the faithful
twin's records (:mod:`netprism.experiments.afm.lora_faithful`), with its diagnosis.
"""

from __future__ import annotations

from typing import Any

from netprism.core.results import Claim, mean_std
from netprism.core.results import format_pm as pm
from netprism.experiments.afm.config import AFMConfig
from netprism.experiments.afm.lora_faithful import FULL, arm_label, faithful_records
from netprism.experiments.afm.records import AFMRuns

PTQ_KEYS = (
    "ptq_tensor_maxabs",
    "ptq_tensor_mse",
    "ptq_channel_maxabs",
    "ptq_channel_mse",
    "ptq_q2k",
)


def seed_stat(data: AFMRuns, key: str) -> tuple[float, float]:
    """Mean and std over seeds of one per-seed number (seeds without it left out)."""
    return mean_std([runs[key] for runs in data["seeds"].values() if key in runs])


def claims_and_metrics(
    data: AFMRuns, config: AFMConfig
) -> tuple[list[Claim], dict[str, float], dict[str, dict[str, float]]]:
    """The six claims (and ``lora_adapts_faithful`` when its twin ran), the flat metrics and the
    baselines' numbers."""
    metrics: dict[str, float] = {}
    baselines: dict[str, dict[str, float]] = {}
    claims = [
        _kv_claim(data, metrics),
        _qat_claim(data, config, metrics, baselines),
    ]
    for make in (_pt_claim, _lg_claim, _guided_claim):
        claim = make(data, metrics, baselines)
        if claim is not None:
            claims.append(claim)
    claims.append(_lora_claim(data, config, metrics, baselines))
    twins = faithful_records(data)
    if twins:
        claims.append(lora_faithful_claim(data, twins, config, metrics))
    for key, value in data.get("perf", {}).items():
        metrics[f"perf_{key}"] = value
    return claims, metrics, baselines


def _kv_claim(data: AFMRuns, metrics: dict[str, float]) -> Claim:
    ratios = {int(t): r for t, r in data["kv_ratio"].items()}
    worst = max(abs(r - 5 / 8) for r in ratios.values())
    base, shared = seed_stat(data, "base"), seed_stat(data, "kv_share")
    deltas = [runs["kv_share"] - runs["base"] for runs in data["seeds"].values()]
    delta = mean_std(deltas)
    metrics.update(
        {
            "bpb_base": base[0],
            "bpb_base_std": base[1],
            "bpb_kv_share": shared[0],
            "bpb_kv_share_std": shared[1],
            "kv_share_delta_bpb": delta[0],
            "kv_share_delta_bpb_std": delta[1],
        }
    )
    for t, r in sorted(ratios.items()):
        metrics[f"kv_ratio_T{t}"] = r
    lengths = ", ".join(str(t) for t in sorted(ratios))
    return Claim(
        "kv_share_memory",
        f"KV-cache bytes of the 5:3 shared model, read from the real cache tensors at T in "
        f"{{{lengths}}}, are exactly 5/8 of the baseline's (measured: largest |ratio - 5/8|); "
        f"validation bpb {pm(shared, 3)} vs {pm(base, 3)} "
        f"(delta {delta[0]:+.3f} +- {delta[1]:.3f}, {len(deltas)} seeds)",
        measured=worst,
        target=0.0,
        op="<=",
    )


def _qat_claim(
    data: AFMRuns,
    config: AFMConfig,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
) -> Claim:
    q = data["qat"]
    best_name = min(PTQ_KEYS, key=lambda k: q[k])
    gap = q[best_name] - q["fp32_control"]
    closed = (q[best_name] - q["qat"]) / gap if gap > 0 else float("nan")
    metrics.update({f"qat_{k}": float(v) for k, v in q.items()})
    metrics["qat_fraction_closed"] = closed
    baselines["ptq"] = {k: q[k] for k in PTQ_KEYS}
    baselines["fp32_control"] = {"bpb": q["fp32_control"]}
    return Claim(
        "qat_closes_gap",
        f"2-bit QAT ({config.qat_steps} steps from the trained fp32 model) closes at least "
        f"{config.qat_min_fraction:.0%} of the gap between the best 2-bit PTQ of an fp32 "
        f"control trained as long ({best_name}: {q[best_name]:.3f} bpb) and that control "
        f"({q['fp32_control']:.3f}); QAT {q['qat']:.3f} bpb at "
        f"{q['qat_bits_per_weight']:.3f} bits per weight (seed {config.seeds[0]})",
        measured=closed,
        target=config.qat_min_fraction,
        op=">=",
        baseline=q[best_name],
        baseline_name=best_name,
    )


def _pt_claim(
    data: AFMRuns, metrics: dict[str, float], baselines: dict[str, dict[str, float]]
) -> Claim | None:
    pt = data.get("pt")
    if pt is None:
        return None
    bpb = seed_stat(data, "pt_moe")
    metrics.update({f"pt_{k}": float(v) for k, v in pt.items()})
    metrics["bpb_pt_moe"], metrics["bpb_pt_moe_std"] = bpb
    metrics["pt_load_entropy"] = seed_stat(data, "pt_load_entropy")[0]
    baselines["dense"] = {"bpb": seed_stat(data, "base")[0]}
    return Claim(
        "pt_syncs",
        f"cross-track synchronizations counted in one forward of the parallel-track MoE "
        f"(L={pt['layers']}, D={pt['block_depth']}) equal L/D = {pt['expected_syncs']} vs "
        f"2L = {pt['tensor_parallel_syncs']} for tensor parallelism; validation bpb "
        f"{pm(bpb, 3)} vs dense {seed_stat(data, 'base')[0]:.3f} at "
        f"{pt['active_params']:.0f} vs {pt['dense_active_params']:.0f} active parameters",
        measured=float(pt["counted_syncs"]),
        target=float(pt["expected_syncs"]),
        op="==",
    )


def _lg_claim(
    data: AFMRuns, metrics: dict[str, float], baselines: dict[str, dict[str, float]]
) -> Claim | None:
    lg = data.get("local_global")
    if lg is None:
        return None
    worst = max(abs(r["measured"] - r["formula"]) for r in lg["ratios"].values())
    for t, r in lg["ratios"].items():
        metrics[f"lg_kv_ratio_T{t}"] = r["measured"]
    bpb = seed_stat(data, "local_global")
    metrics["bpb_local_global"], metrics["bpb_local_global_std"] = bpb
    for key in ("local_global_x2", "local_global_x4", "base_x2", "base_x4"):
        metrics[f"bpb_{key}"], metrics[f"bpb_{key}_std"] = seed_stat(data, key)
    return Claim(
        "local_global_kv",
        f"KV bytes of 3 local (W={lg['window']}) : 1 global layers over all-global follow "
        f"1/4 + 3/4*min(W,T)/T at T in {{{', '.join(str(t) for t in lg['ratios'])}}} "
        f"(measured: largest |measured - formula|); validation bpb {pm(bpb, 3)}",
        measured=worst,
        target=1e-12,
        op="<=",
    )


def _guided_claim(
    data: AFMRuns, metrics: dict[str, float], baselines: dict[str, dict[str, float]]
) -> Claim | None:
    g = data.get("guided")
    if g is None:
        return None
    metrics.update({f"guided_{k}": float(v) for k, v in g.items()})
    baselines["unconstrained"] = {"valid_rate": g["unconstrained_valid_rate"]}
    return Claim(
        "guided_valid",
        f"{g['samples']:.0f} guided samples at temperature 1 (trained and untrained model) all "
        f"parse and validate against their schema within {g['max_bytes']:.0f} bytes "
        f"(unconstrained: {g['unconstrained_valid_rate']:.1%} valid)",
        measured=g["valid_rate"],
        target=1.0,
        op="==",
        baseline=g["unconstrained_valid_rate"],
        baseline_name="unconstrained sampling",
    )


def _lora_claim(
    data: AFMRuns,
    config: AFMConfig,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
) -> Claim:
    lo = data["lora"]
    metrics.update({f"lora_{k}" if not k.startswith("lora") else k: v for k, v in lo.items()})
    ratio = lo["lora_drop"] / lo["full_drop"] if lo["full_drop"] > 0 else float("nan")
    metrics["lora_drop_over_full"] = ratio
    baselines["full_finetune"] = {"heldout_bpb": lo["full_heldout"]}
    return Claim(
        "lora_adapts",
        f"rank-{config.lora_rank} LoRA ({lo['lora_trainable_fraction']:.1%} of the parameters "
        f"trainable) lowers held-out-package ({config.heldout_package}) bpb from "
        f"{lo['base_heldout']:.3f} to {lo['lora_heldout']:.3f}, at least "
        f"{config.lora_min_fraction_of_full:.0%} of full fine-tuning's drop (to "
        f"{lo['full_heldout']:.3f})",
        measured=ratio,
        target=config.lora_min_fraction_of_full,
        op=">=",
        baseline=lo["full_heldout"],
        baseline_name="full fine-tuning",
    )


def lora_faithful_claim(
    data: AFMRuns,
    twins: dict[int, dict[str, Any]],
    config: AFMConfig,
    metrics: dict[str, float],
) -> Claim:
    """``lora_adapts`` on the faithful twin's records (``twins``, from
    :func:`~netprism.experiments.afm.lora_faithful.faithful_records`): measured = the mean over
    seeds of LoRA's drop over full fine-tuning's, each seed's ratio in the text; diagnosed by
    the chosen rates, the ratio along the curves and across ranks, and general validation
    after adapting."""
    seeds = list(twins)
    ratios = [twins[s]["ratio"] for s in seeds]
    ratio = mean_std(ratios)
    for name in ("base_heldout", "lora_heldout", "full_heldout", "lora_drop", "full_drop"):
        stat = mean_std([twins[s][name] for s in seeds])
        metrics[f"lora_faithful_{name}"], metrics[f"lora_faithful_{name}_std"] = stat
    metrics["lora_faithful_ratio"], metrics["lora_faithful_ratio_std"] = ratio
    for s, r in zip(seeds, ratios, strict=True):
        metrics[f"lora_faithful_ratio_seed{s}"] = r
    per_seed = ", ".join(f"seed {s}: {r:.2f}" for s, r in zip(seeds, ratios, strict=True))
    mean = {
        k: metrics[f"lora_faithful_{k}"] for k in ("base_heldout", "lora_heldout", "full_heldout")
    }
    claim = Claim(
        "lora_adapts_faithful",
        f"rank-{config.lora_rank} LoRA trained {config.faithful_lora_steps} steps at its chosen "
        f"rate lowers held-out-package ({config.heldout_package}) bpb from "
        f"{mean['base_heldout']:.3f} to {mean['lora_heldout']:.3f}, at least "
        f"{config.lora_min_fraction_of_full:.0%} of full fine-tuning's drop (to "
        f"{mean['full_heldout']:.3f}, as long, at its chosen rate); measured = mean over "
        f"{len(seeds)} seeds of LoRA's drop / full fine-tuning's ({per_seed})",
        measured=ratio[0],
        target=config.lora_min_fraction_of_full,
        op=">=",
        baseline=mean["full_heldout"],
        baseline_name="full fine-tuning (chosen rate)",
    )
    claim.settings = {
        "lora_steps": config.faithful_lora_steps,
        "lora_lrs": list(config.faithful_lora_lrs),
        "full_finetune_lrs": list(config.faithful_full_lrs),
        "lr_selection": f"last {config.faithful_select_fraction:.0%} of the adaptation half",
        "eval_every": config.faithful_eval_every,
        "curve_ranks": list(config.faithful_curve_ranks),
    }
    claim.seeds = list(seeds)
    claim.diagnosis = _lora_faithful_diagnosis(data, twins, config, metrics)
    return claim


def _lora_faithful_diagnosis(
    data: AFMRuns, twins: dict[int, dict[str, Any]], config: AFMConfig, metrics: dict[str, float]
) -> str:
    """The drops and their ratio per seed, the chosen rates, the ratio on the first seed's
    curves at the reproduced study's step count and at the end, per rank, and forgetting."""
    seeds = list(twins)
    parts = [
        f"seed {s}: drops LoRA {t['lora_drop']:.3f} / full {t['full_drop']:.3f} = "
        f"{t['ratio']:.2f} at rates {t['lora_lr']:g} / {t['full_lr']:g}"
        for s, t in ((s, twins[s]) for s in seeds)
    ]
    first = twins[seeds[0]]
    lora = first["arms"][arm_label(config.lora_rank, config.lora_alpha, first["lora_lr"])]
    full = first["arms"][arm_label(FULL, 0.0, first["full_lr"])]
    text = "; ".join(parts)
    along = curve_ratios(lora, full)
    if along:
        at = min(along, key=lambda step: abs(step - config.lora_steps))
        end = max(along)
        metrics["lora_faithful_curve_ratio_end"] = along[end]
        reproduced = _drop_ratio(data["lora"]["lora_drop"], data["lora"]["full_drop"])
        text += (
            f"; on seed {seeds[0]}'s curves the ratio is {along[at]:.2f} at step {at} and "
            f"{along[end]:.2f} at step {end} (the reproduced run on seed {config.seeds[0]}, "
            f"{config.lora_steps} steps "
            f"on its own schedule at rates {config.finetune_lr:g} / "
            f"{config.full_finetune_lr:g}: {reproduced:.2f})"
        )
    ranks = first.get("ranks", {})
    if ranks:
        by_rank = ", ".join(
            f"r{r} {_drop_ratio(v['drop'], first['full_drop']):.2f}" for r, v in ranks.items()
        )
        text += f"; ratio by rank at LoRA's rate ({by_rank})"
    general = {k: mean_std([twins[s][f"{k}_val_general"] for s in seeds])[0]
               for k in ("base", "lora", "full")}  # fmt: skip
    text += (
        f"; general validation bpb after adapting (forgetting): base {general['base']:.3f}, "
        f"LoRA {general['lora']:.3f}, full {general['full']:.3f}"
    )
    return text


def curve_ratios(lora: dict, full: dict) -> dict[int, float]:
    """Step -> LoRA's drop / full fine-tuning's drop on the curves' shared windows (both curves
    start at the base, step 0); steps where full fine-tuning has not dropped are left out."""
    base = lora["bpb"][0]
    return {
        step: (base - lo) / (base - fu)
        for step, lo, fu in zip(lora["step"], lora["bpb"], full["bpb"], strict=True)
        if base - fu > 0
    }


def _drop_ratio(lora_drop: float, full_drop: float) -> float:
    """LoRA's drop over full fine-tuning's; NaN (never holds) when full fine-tuning did not
    drop."""
    return lora_drop / full_drop if full_drop > 0 else float("nan")
