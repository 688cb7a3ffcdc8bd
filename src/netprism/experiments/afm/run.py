"""The work of the ``afm`` experiment: every study, in one fixed order of random draws."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from netprism.core.seed import seed_everything
from netprism.experiments.afm.config import AFMConfig
from netprism.experiments.afm.dense_studies import kv_cache_ratios, lora_study, qat_study
from netprism.experiments.afm.guided import guided_study
from netprism.experiments.afm.lora_faithful import lora_faithful_study
from netprism.experiments.afm.records import AFMRuns
from netprism.experiments.afm.track_studies import static_checks, track_runs
from netprism.experiments.afm.training import Budget, lm_config, train_and_score
from netprism.lm.bench import decode_tokens_per_s, model_device, prefill_ms
from netprism.lm.corpus import stdlib_corpus
from netprism.lm.model import ByteLM
from netprism.train import resolve_device


def measure(config: AFMConfig) -> AFMRuns:
    """Every study on ``config.device``: per seed the dense, KV-shared, PT-MoE and local/global
    models; on the first seed's baseline QAT, LoRA, guided generation and the timings; last,
    the faithful LoRA twin on the baseline of each of ``faithful_seeds``."""
    return _measure(config, resolve_device(config.device))


def _measure(config: AFMConfig, device: torch.device) -> AFMRuns:
    corpus = stdlib_corpus(heldout_package=config.heldout_package, max_bytes=config.corpus_bytes)
    budget = Budget(
        config.steps,
        config.batch_size,
        config.context,
        config.lr,
        config.eval_batches,
        config.eval_seed,
    )
    data: dict[str, Any] = {
        "corpus": {k: v for k, v in corpus.to_dict().items() if k != "files"},
        "kv_ratio": kv_cache_ratios(lm_config(config, 3 / 8), config.kv_lengths, device),
        "seeds": {},
    }
    bases: dict[int, ByteLM] = {}
    total = len(config.seeds) + 3 + len(config.faithful_seeds)
    bar = tqdm(total=total, desc="afm", unit="study", disable=not config.progress)
    for seed in config.seeds:
        runs: dict[str, Any] = {}
        for name, share in (("base", 0.0), ("kv_share", 3 / 8)):
            seed_everything(seed)
            model = ByteLM(lm_config(config, share)).to(device)  # CPU init, then moved
            runs[name] = train_and_score(model, corpus, budget, seed)
            if name == "base":
                bases[seed] = model
        runs.update(track_runs(config, corpus, budget, seed, bases[seed]))
        data["seeds"][seed] = runs
        bar.update()
    first = config.seeds[0]
    base = bases[first]
    data["qat"] = qat_study(base, corpus, budget, first, config.qat_steps, config.finetune_lr)
    bar.update()
    data["lora"] = lora_study(
        base,
        corpus,
        budget,
        first,
        steps=config.lora_steps,
        rank=config.lora_rank,
        alpha=config.lora_alpha,
        lr=config.finetune_lr,
        full_lr=config.full_finetune_lr,
    )
    bar.update()
    data.update(static_checks(config, device))
    guided = guided_study(config, base, first)
    if guided is not None:
        data["guided"] = guided
    data["perf"] = _perf(config, base)
    bar.update()
    data["lora_faithful"] = {}
    for seed in config.faithful_seeds:  # last: the studies above never see its draws
        data["lora_faithful"][seed] = lora_faithful_study(
            bases[seed], corpus, budget, seed, config, with_ranks=seed == config.faithful_seeds[0]
        )
        bar.update()
    bar.close()
    return data


def _perf(config: AFMConfig, base: ByteLM) -> dict[str, float]:
    """Decode speed of the trained baseline and prefill time with and without skipping, on the
    baseline's device."""
    seed_everything(0)
    shared = ByteLM(lm_config(config, 3 / 8)).to(model_device(base)).eval()
    with torch.no_grad():
        out = {
            "decode_tokens_per_s": decode_tokens_per_s(
                base, config.context // 2, config.context // 2
            ),
        }
    timings = prefill_ms(shared, config.context, config.prefill_repeats)
    out["prefill_ms_skip"], out["prefill_ms_full"] = timings["skip"], timings["full"]
    out["prefill_ms_base"] = prefill_ms(base, config.context, config.prefill_repeats)["full"]
    return out
