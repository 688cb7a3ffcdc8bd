"""The faithful twin of ``lora_adapts``: longer adaptation at chosen learning rates.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575) adapts a
frozen base with low-rank adapters trained long relative to the base, at tuned rates; the
reproduced study trains rank-4 LoRA for ``lora_steps`` at one untuned rate.  Here, from the
base the experiment already trained for each seed of ``faithful_seeds``: LoRA at the claim's
rank and full fine-tuning, ``faithful_lora_steps`` steps each, every rate of their grid; each
method keeps the rate that scores best on the last ``faithful_select_fraction`` of the
adaptation half (never on the scoring half).  Held-out curves every ``faithful_eval_every``
steps; on the first faithful seed LoRA also at ``faithful_curve_ranks`` (alpha = 2 x rank).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from torch import nn

from netprism.experiments.afm.config import AFMConfig
from netprism.experiments.afm.training import Budget, val_bpb
from netprism.experiments.base import check_faithful_seeds
from netprism.lm.corpus import ByteCorpus
from netprism.lm.lora import add_lora
from netprism.lm.model import ByteLM
from netprism.lm.train import evaluate_bpb, train_lm

FULL = 0  # the "rank" of full fine-tuning in the arms' records
CURVE_SEED_OFFSET = 2000  # training windows (and curve windows) of every arm: the reproduced
# study's seed + 2000


def check_faithful(config: AFMConfig) -> None:
    """Raise ``ValueError`` naming the bad setting of the twin, before any work."""
    check_faithful_seeds(
        config.faithful_seeds, config.seeds, "the twin adapts the base trained for each seed"
    )
    for name in ("faithful_lora_lrs", "faithful_full_lrs", "faithful_curve_ranks"):
        if not getattr(config, name):
            raise ValueError(f"{name} needs at least one value, got {getattr(config, name)!r}")
    for name in ("faithful_lora_lrs", "faithful_full_lrs"):
        if not all(math.isfinite(lr) and lr > 0 for lr in getattr(config, name)):
            raise ValueError(f"{name} must be finite and > 0, got {getattr(config, name)!r}")
    if not all(rank >= 1 for rank in config.faithful_curve_ranks):
        raise ValueError(f"faithful_curve_ranks must be >= 1, got {config.faithful_curve_ranks!r}")
    if not 0 < config.faithful_select_fraction < 1:
        raise ValueError(
            f"faithful_select_fraction must lie in (0, 1), got {config.faithful_select_fraction!r}"
        )
    if config.faithful_lora_steps < 1 or config.faithful_eval_every < 1:
        raise ValueError(
            f"faithful_lora_steps and faithful_eval_every must be >= 1, got "
            f"{config.faithful_lora_steps!r} and {config.faithful_eval_every!r}"
        )


def adaptation_split(
    heldout: np.ndarray, select_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out package cut by position into fit, selection and scoring parts.

    The first half is the reproduced study's adaptation half: its first ``1 - select_fraction``
    trains, its last ``select_fraction`` chooses the learning rate.  The second half scores,
    as in the reproduced study.

    Parameters
    ----------
    heldout : ndarray (N,) uint8
    select_fraction : float
        In (0, 1).

    Returns
    -------
    fit, select, score : ndarray (N_fit,), (N_select,), (N - N // 2,) uint8
        Consecutive, disjoint slices of ``heldout``.
    """
    half = heldout.size // 2
    cut = int(round(half * (1 - select_fraction)))
    return heldout[:cut], heldout[cut:half], heldout[half:]


def arm_label(rank: int, alpha: float, lr: float) -> str:
    """``"lora_r4_a8@0.001"`` for a LoRA arm, ``"full@0.0003"`` for full fine-tuning."""
    return f"full@{lr:g}" if rank == FULL else f"lora_r{rank}_a{alpha:g}@{lr:g}"


def faithful_records(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The twin's records (``data["lora_faithful"]``) by int seed in seed order, each one's
    ``ranks`` by int rank in rank order: as measured, or as read back from ``afm_runs.json``,
    whose keys are strings.  Empty when the twin did not run."""
    pairs = sorted(((int(s), r) for s, r in data.get("lora_faithful", {}).items()),
                   key=lambda pair: pair[0])  # fmt: skip
    out = {}
    for seed, record in pairs:
        ranks = {int(r): v for r, v in record.get("ranks", {}).items()}
        out[seed] = {**record, "ranks": dict(sorted(ranks.items()))} if ranks else record
    return out


def lora_faithful_study(
    base: ByteLM,
    corpus: ByteCorpus,
    budget: Budget,
    seed: int,
    config: AFMConfig,
    *,
    with_ranks: bool,
) -> dict[str, Any]:
    """LoRA (the claim's rank) vs full fine-tuning of ``base``, each at its chosen rate.

    Returns the seed's record: held-out (scoring half) and general validation bpb of the base
    and of both chosen models, their drops and ``ratio`` = LoRA's drop / full fine-tuning's,
    the chosen rates, every arm's selection bpb and curve (``arms``), and with ``with_ranks``
    LoRA at each of ``faithful_curve_ranks`` at LoRA's chosen rate (``ranks``).
    """
    parts = adaptation_split(corpus.heldout, config.faithful_select_fraction)
    score = parts[2]
    out: dict[str, Any] = {
        "base_heldout": val_bpb(base, score, budget),
        "base_val_general": val_bpb(base, corpus.val, budget),
        "base_curve_bpb": evaluate_bpb(
            base, score, budget.context, budget.eval_batches, seed + CURVE_SEED_OFFSET
        ),
        "fit_bytes": int(parts[0].size),
        "select_bytes": int(parts[1].size),
        "arms": {},
    }
    chosen: dict[str, nn.Module] = {}
    for method, rank, alpha, lrs in (  # rank, alpha and rates of each method's arms
        ("lora", config.lora_rank, config.lora_alpha, config.faithful_lora_lrs),
        ("full", FULL, 0.0, config.faithful_full_lrs),
    ):
        models = {lr: _adapt(base, parts, budget, seed, config, rank, alpha, lr, out) for lr in lrs}
        select = {r: out["arms"][arm_label(rank, alpha, r)]["select_bpb"] for r in lrs}
        lr = min(select, key=select.__getitem__)  # never the scoring half
        chosen[method], out[f"{method}_lr"] = models[lr], lr
        out[f"{method}_heldout"] = val_bpb(models[lr], score, budget)
        out[f"{method}_val_general"] = val_bpb(models[lr], corpus.val, budget)
        out[f"{method}_drop"] = out["base_heldout"] - out[f"{method}_heldout"]
    out["ratio"] = out["lora_drop"] / out["full_drop"] if out["full_drop"] > 0 else float("nan")
    if with_ranks:
        out["ranks"] = _rank_curve(base, corpus, parts, budget, seed, config, chosen["lora"], out)
    return out


def _adapt(
    base: ByteLM,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    budget: Budget,
    seed: int,
    config: AFMConfig,
    rank: int,
    alpha: float,
    lr: float,
    out: dict[str, Any],
) -> nn.Module:
    """One arm: a copy of ``base`` (with rank-``rank`` adapters, or all weights for
    :data:`FULL`) trained on the fit part, its held-out curve on the scoring half (step 0: the
    base, on the curve's windows) and its bpb on the selection part, recorded in
    ``out["arms"]``.  Every arm trains on the same windows (``seed + 2000``, as the reproduced
    study)."""
    fit, select, score = parts
    model = copy.deepcopy(base)
    if rank != FULL:
        add_lora(model, rank=rank, alpha=alpha, seed=seed)
    history = train_lm(
        model,
        fit,
        steps=config.faithful_lora_steps,
        batch_size=budget.batch_size,
        context=budget.context,
        lr=lr,
        seed=seed + CURVE_SEED_OFFSET,
        weight_decay=0.0,
        eval_every=config.faithful_eval_every,
        val=score,
        eval_batches=budget.eval_batches,
    )
    out["arms"][arm_label(rank, alpha, lr)] = {
        "rank": rank,
        "alpha": alpha,
        "lr": lr,
        "select_bpb": val_bpb(model, select, budget),
        "step": [0, *history.val_step],
        "bpb": [out["base_curve_bpb"], *history.val_bpb],
    }
    return model


def _rank_curve(
    base: ByteLM,
    corpus: ByteCorpus,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    budget: Budget,
    seed: int,
    config: AFMConfig,
    claim_model: nn.Module,
    out: dict[str, Any],
) -> dict[int, dict[str, Any]]:
    """LoRA at each of ``faithful_curve_ranks`` (alpha = 2 x rank) at LoRA's chosen rate: held-out
    and general validation bpb and the arm holding its curve.  The claim's arm is reused when
    its alpha is 2 x its rank."""
    lr, score = out["lora_lr"], parts[2]
    ranks: dict[int, dict[str, Any]] = {}
    for rank in config.faithful_curve_ranks:
        if rank == config.lora_rank and config.lora_alpha == 2 * rank:
            model = claim_model
        else:
            model = _adapt(base, parts, budget, seed, config, rank, 2.0 * rank, lr, out)
        heldout = val_bpb(model, score, budget)
        alpha = config.lora_alpha if model is claim_model else 2.0 * rank
        ranks[rank] = {
            "arm": arm_label(rank, alpha, lr),
            "heldout": heldout,
            "drop": out["base_heldout"] - heldout,
            "val_general": val_bpb(model, corpus.val, budget),
        }
    return ranks
