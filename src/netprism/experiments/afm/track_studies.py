"""The ``afm`` studies of other architectures: parallel-track MoE and local/global attention.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575) and
"Parallel Track Transformers" (arXiv 2602.07306); the CPU-scale parallel-track and
local/global studies.  One CPU has no interconnect, so parallel tracks are measured by their
counted synchronizations and their quality only; no speed-up is claimed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.experiments.afm.config import AFMConfig
from netprism.experiments.afm.training import Budget, lm_config, train_and_score, val_bpb
from netprism.lm.bench import model_device
from netprism.lm.corpus import ByteCorpus
from netprism.lm.local_global import (
    LocalGlobalConfig,
    LocalGlobalLM,
    all_global_baseline,
    kv_bytes_ratio,
)
from netprism.lm.model import ByteLM
from netprism.lm.parallel_track import (
    ParallelTrackLM,
    PTConfig,
    config_params,
    count_params,
    match_width,
)
from netprism.lm.parallel_track_moe import load_entropy, moe_layers


def pt_config(config: AFMConfig) -> PTConfig:
    """Parallel tracks as deep as the dense model, their width matched on active parameters.

    Head dimension is held at the dense model's, so attention stays comparable; the track
    width is searched over even values for active parameters within 5 % of the dense model.
    """
    dense = lm_config(config)
    template = PTConfig(
        context=config.context,
        n_layers=config.n_layers,
        n_tracks=config.pt_tracks,
        block_depth=config.pt_block_depth,
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_kv_heads=config.n_kv_heads,
        head_dim=dense.hd,
        n_experts=config.pt_experts,
        top_k=config.pt_top_k,
        moe=True,
    )
    _, active = config_params(dense)
    return match_width(template, active, widths=range(8, 2 * config.d_model + 1, 2))


def lg_config(config: AFMConfig) -> LocalGlobalConfig:
    """3 local (window ``lg_window``, RoPE) : 1 global (NoPE) layers, the dense model's shape."""
    return LocalGlobalConfig(
        context=config.context,
        n_layers=config.n_layers,
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_kv_heads=config.n_kv_heads,
        window=config.lg_window,
        local_per_global=3,
        max_context=4 * config.context,
    )


def track_runs(
    config: AFMConfig, corpus: ByteCorpus, budget: Budget, seed: int, base: ByteLM
) -> dict[str, float]:
    """Train the PT-MoE and the local/global model for one seed; score them and the base.

    Every model is initialised on the CPU (the same weights on every device) and moved to the
    device of ``base``.
    """
    device = model_device(base)
    out: dict[str, float] = {}
    seed_everything(seed)
    pt = ParallelTrackLM(pt_config(config)).to(device)
    out["pt_moe"] = train_and_score(pt, corpus, budget, seed)
    out["pt_load_entropy"] = _load_entropy(pt, corpus, budget)
    seed_everything(seed)
    lg = LocalGlobalLM(lg_config(config)).to(device)
    out["local_global"] = train_and_score(lg, corpus, budget, seed)
    glob = LocalGlobalLM(all_global_baseline(lg_config(config))).to(device)
    glob.load_state_dict(base.state_dict())  # the all-global RoPE model *is* the base
    for factor in (2, 4):
        longer = replace(budget, context=factor * config.context)
        out[f"local_global_x{factor}"] = val_bpb(lg, corpus.val, longer)
        out[f"base_x{factor}"] = val_bpb(glob, corpus.val, longer)
    return out


def _load_entropy(model: ParallelTrackLM, corpus: ByteCorpus, budget: Budget) -> float:
    """Mean normalized entropy of the experts' token counts on one validation batch."""
    x = torch.from_numpy(corpus.val[: budget.context * 8].copy()).long().view(8, -1)  # (8, T)
    x = x.to(model_device(model))
    with torch.no_grad():
        model.eval()(x)
    loads = [m.last_load for m in moe_layers(model)]
    return sum(load_entropy(load) for load in loads) / len(loads)


def static_checks(config: AFMConfig, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Counted syncs and parameter counts of the PT-MoE (one forward pass on ``device``); KV
    bytes of local/global attention."""
    cfg = pt_config(config)
    pt = ParallelTrackLM(cfg).to(device)
    with torch.no_grad():
        pt(torch.zeros(1, 8, dtype=torch.long, device=device))
    total, active = count_params(pt)
    dense_total, dense_active = count_params(ByteLM(lm_config(config)))  # counted, never run
    lg = lg_config(config)
    ratios = {}  # cache bytes: allocated and measured on the CPU, the same on any device
    for T in config.lg_lengths:
        measured = kv_bytes_ratio(replace(lg, max_context=max(T, lg.context)), T)
        formula = 0.25 + 0.75 * min(config.lg_window, T) / T
        ratios[T] = {"measured": measured, "formula": formula}
    return {
        "pt": {
            "layers": cfg.n_layers,
            "block_depth": cfg.block_depth,
            "tracks": cfg.n_tracks,
            "track_width": cfg.d_model,
            "counted_syncs": pt.sync_count,
            "expected_syncs": pt.syncs_per_forward(),
            "tensor_parallel_syncs": pt.tensor_parallel_syncs(),
            "total_params": total,
            "active_params": active,
            "dense_active_params": dense_active,
            "dense_total_params": dense_total,
        },
        "local_global": {"window": config.lg_window, "ratios": ratios},
    }
