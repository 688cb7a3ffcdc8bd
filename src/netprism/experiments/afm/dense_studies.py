"""The ``afm`` studies on the dense byte-level LM: KV sharing, 2-bit PTQ and QAT, LoRA.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575); the
CPU-scale protocol's KV-sharing, QAT and LoRA studies.  Each function trains or measures one
thing and returns plain numbers; :mod:`netprism.experiments.afm.claims` turns them into claims.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from netprism.experiments.afm.training import Budget, finetune, val_bpb
from netprism.lm.bench import model_device
from netprism.lm.corpus import BatchSampler, ByteCorpus
from netprism.lm.formats import q2k_quantize
from netprism.lm.lora import add_lora, lora_state_dict, trainable_fraction
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.quant import (
    RowFakeQuant,
    ptq_2bit,
    ptq_copy,
    quantize_model_qat,
    size_report,
)

# ---------------------------------------------------------------------------- KV sharing


def kv_cache_ratios(
    config: LMConfig, lengths: tuple[int, ...], device: torch.device | str = "cpu"
) -> dict[int, float]:
    """Bytes of the shared model's real cache tensors over the baseline's, at each length.

    Both caches are allocated for ``max_len = T`` (``T`` capped at the context) on ``device``
    and filled by a forward pass of ``T`` bytes, so the ratio is read from the tensors a
    decoder really holds.
    """
    out = {}
    for T in lengths:
        cfg = replace(config, context=max(config.context, T))
        shared = ByteLM(cfg).to(device)
        base = ByteLM(replace(cfg, kv_share=0.0)).to(device)
        idx = torch.zeros(1, T, dtype=torch.long, device=device)
        used = []
        for model in (shared, base):
            cache = model.new_cache(1, max_len=T)
            with torch.no_grad():
                model(idx, cache=cache, last_only=True)
            used.append(cache.used_nbytes())
        out[T] = used[0] / used[1]
    return out


# ---------------------------------------------------------------------------- 2-bit QAT


PTQ_VARIANTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ptq_tensor_maxabs": lambda w: ptq_2bit(w, granularity="tensor", clip="maxabs"),
    "ptq_tensor_mse": lambda w: ptq_2bit(w, granularity="tensor", clip="mse"),
    "ptq_channel_maxabs": lambda w: ptq_2bit(w, granularity="channel", clip="maxabs"),
    "ptq_channel_mse": lambda w: ptq_2bit(w, granularity="channel", clip="mse"),
    "ptq_q2k": lambda w: q2k_quantize(w).dequantize().to(w.dtype),
}


def qat_study(
    base: ByteLM, corpus: ByteCorpus, budget: Budget, seed: int, steps: int, lr: float
) -> dict[str, Any]:
    """QAT for ``steps`` more steps, an fp32 control trained as long, and PTQ of the control.

    QAT and the control start from the same trained ``base`` and see the same windows
    (same seed), weight decay 0 and the same (lower) learning rate.  Every PTQ variant is
    applied to the control, so PTQ, QAT and fp32 all spend the same training tokens; PTQ of the
    shorter-trained ``base`` is kept as ``base_<variant>`` for reference.
    """
    out: dict[str, Any] = {"fp32_base": val_bpb(base, corpus.val, budget)}
    control = copy.deepcopy(base)
    finetune(control, corpus.train, budget, seed + 1000, steps, lr)
    out["fp32_control"] = val_bpb(control, corpus.val, budget)
    for name, quantize in PTQ_VARIANTS.items():
        out[name] = val_bpb(ptq_copy(control, quantize), corpus.val, budget)
        out[f"base_{name}"] = val_bpb(ptq_copy(base, quantize), corpus.val, budget)
    qat = quantize_model_qat(copy.deepcopy(base))
    out["qat_step0"] = val_bpb(qat, corpus.val, budget)  # = base_ptq_channel_mse
    finetune(qat, corpus.train, budget, seed + 1000, steps, lr)
    out["qat"] = val_bpb(qat, corpus.val, budget)
    rep = size_report(qat)
    out["qat_bits_per_weight"] = rep.bits_per_weight
    out["qat_packed_bytes"] = rep.code_bytes + rep.scale_bytes
    out["fp32_linear_bytes"] = 4 * rep.n_quantized
    emb = copy.deepcopy(qat)
    embed = cast(nn.Embedding, emb.embed)
    parametrize.register_parametrization(embed, "weight", RowFakeQuant(4))
    out["qat_embed4"] = val_bpb(emb, corpus.val, budget)
    out["fp32_kv8"] = val_bpb_kv8(control, corpus.val, budget)
    return out


@torch.no_grad()
def val_bpb_kv8(model: ByteLM, data: np.ndarray, budget: Budget) -> float:
    """:func:`val_bpb` on the same windows, with keys and values read from an int8 KV cache.

    Each window runs once through an :class:`~netprism.lm.kv_cache.Int8KVCache`; per-token
    scales make this equal to decoding it byte by byte.
    """
    sampler = BatchSampler(data, batch_size=8, context=budget.context, seed=budget.eval_seed)
    device = model_device(model)
    model.eval()
    total = 0.0
    for _ in range(budget.eval_batches):
        batch = sampler.sample().to(device)  # (B, T + 1) windows drawn on the CPU
        x, y = batch[:, :-1].long(), batch[:, 1:].long()
        cache = model.new_cache(x.shape[0], max_len=x.shape[1], kv_bits=8)
        logits = model(x, cache=cache)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
    return total / budget.eval_batches / math.log(2)


# ---------------------------------------------------------------------------- LoRA


def lora_study(
    base: ByteLM,
    corpus: ByteCorpus,
    budget: Budget,
    seed: int,
    *,
    steps: int,
    rank: int,
    alpha: float,
    lr: float,
    full_lr: float,
) -> dict[str, float]:
    """Adapt ``base`` to the held-out package: LoRA (base frozen) vs full fine-tuning.

    The held-out bytes are split in two halves by position: adapters train on the first and
    every model is scored on the second.
    """
    half = corpus.heldout.size // 2
    train_part, test_part = corpus.heldout[:half], corpus.heldout[half:]
    out = {"base_heldout": val_bpb(base, test_part, budget)}
    adapted = add_lora(copy.deepcopy(base), rank=rank, alpha=alpha, seed=seed)
    out["lora_trainable_fraction"] = trainable_fraction(adapted)
    out["lora_params"] = float(sum(t.numel() for t in lora_state_dict(adapted).values()))
    finetune(adapted, train_part, budget, seed + 2000, steps, lr)
    out["lora_heldout"] = val_bpb(adapted, test_part, budget)
    full = copy.deepcopy(base)
    finetune(full, train_part, budget, seed + 2000, steps, full_lr)
    out["full_heldout"] = val_bpb(full, test_part, budget)
    out["lora_drop"] = out["base_heldout"] - out["lora_heldout"]
    out["full_drop"] = out["base_heldout"] - out["full_heldout"]
    out["lora_val_general"] = val_bpb(adapted, corpus.val, budget)
    out["full_val_general"] = val_bpb(full, corpus.val, budget)
    return out
