"""``afm``: the Apple Foundation Models 2025 ideas on a tiny byte-level LM, measured honestly.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575); the
protocol is our CPU-scale one.  Nothing here tests Apple's claims at 3B
scale: the 37.5 % KV saving, the L/D sync count and the local/global KV formula are arithmetic
identities, so reproducing them checks the implementation; the quality effects (KV sharing,
2-bit QAT, parallel tracks, LoRA) are what is uncertain at tiny scale and are reported with
their seed spread.

Corpus: the Python standard library's own ``.py`` sources (split by file hash, ``email/`` held
out), bits per byte on the same seeded validation windows for every model.  Studies:

- (a) KV sharing 5:3 vs the same 8-layer baseline, over ``seeds``: cache bytes from the real
  tensors at several lengths, validation bpb, prefill time with and without skipping block 2.
- (b) 2-bit: five PTQ variants of the trained baseline (per-tensor / per-channel, max-abs / MSE
  clip, Q2_K-style), QAT for ``qat_steps`` more steps vs an fp32 control trained as long; 4-bit
  embeddings and int8 KV as extras; packed size.
- (c) parallel-track MoE at matched active parameters; (d) interleaved local/global attention;
  (e) guided generation validity; (f) LoRA vs full fine-tuning on the held-out package.

Device: ``--device`` (default ``auto``: CUDA when present) holds every model: training, scoring,
cache measurements, decoding and the prefill/decode timings (synchronized on CUDA).  Models are
initialised on the CPU from the seed and then moved, so each device starts from the same
weights; batch windows are drawn on the CPU and moved.  What stays on the CPU: the schema
masks of guided decoding (a byte automaton in Python), its sampling generator (seeded draws
that do not depend on the device), and the local/global cache-byte count (allocation only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from netprism.core.seed import seed_everything, torch_threads
from netprism.experiments import _afm_core as core
from netprism.experiments import _afm_extra as extra
from netprism.experiments._afm_report import claims_and_metrics, plot_all
from netprism.experiments.base import Result, check_seeds, register_experiment, seeded_result
from netprism.io import atomic_write_text
from netprism.lm.bench import decode_tokens_per_s, model_device, prefill_ms
from netprism.lm.corpus import stdlib_corpus
from netprism.lm.model import ByteLM
from netprism.train import resolve_device


@dataclass(frozen=True)
class AFMConfig:
    """Config of the ``afm`` experiment (defaults = small scale)."""

    d_model: int = 64
    n_layers: int = 8
    n_heads: int = 4
    n_kv_heads: int = 2
    context: int = 128
    batch_size: int = 16
    steps: int = 300
    lr: float = 3e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    corpus_bytes: int | None = 2_000_000  # cap per split; None reads the whole stdlib
    heldout_package: str = "email"
    eval_batches: int = 16
    eval_seed: int = 12345
    kv_lengths: tuple[int, ...] = (16, 64, 128, 256, 1024)
    prefill_repeats: int = 20
    qat_steps: int = 150
    finetune_lr: float = 1e-3  # QAT, its fp32 control and LoRA: a low rate, no weight decay
    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_steps: int = 150
    full_finetune_lr: float = 3e-4
    pt_tracks: int = 2
    pt_block_depth: int = 4  # AFM's D: 8 layers per track -> 2 syncs, vs 16 for TP
    pt_experts: int = 4
    pt_top_k: int = 2
    lg_window: int = 32  # a quarter of the training context, as W=64 at 256 (afm.md 7d)
    lg_lengths: tuple[int, ...] = (256, 1024, 4096)
    guided_samples: int = 1000
    guided_max_bytes: int = 96
    guided_batch: int = 100
    qat_min_fraction: float = 0.5  # "QAT closes most of the gap" (afm.md 7b)
    lora_min_fraction_of_full: float = 0.5  # LoRA keeps at least half of full FT's drop
    threads: int = 2  # torch CPU threads (the 2-core CI machine)
    progress: bool = True
    device: str = "auto"  # every model trains and is scored here; "auto": CUDA when present


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "d_model": 32,
        "context": 64,
        "batch_size": 4,
        "steps": 4,
        "seeds": (0,),
        "corpus_bytes": 50_000,
        "eval_batches": 2,
        "kv_lengths": (16, 64),
        "prefill_repeats": 2,
        "qat_steps": 2,
        "lora_steps": 2,
        "lg_window": 16,
        "lg_lengths": (256,),
        "guided_samples": 20,
        "guided_max_bytes": 48,
        "guided_batch": 10,
        "threads": 1,
    },
    "small": {},
    "full": {
        "d_model": 192,
        "context": 256,
        "batch_size": 32,
        "steps": 5000,
        "seeds": (0, 1, 2, 3, 4),
        "corpus_bytes": None,
        "eval_batches": 64,
        "kv_lengths": (64, 256, 1024, 4096),
        "qat_steps": 2000,
        "lora_steps": 1000,
        "lora_rank": 8,
        "lora_alpha": 16.0,
        "lg_window": 64,
        "lg_lengths": (256, 1024, 4096, 16384),
        "guided_samples": 2000,
    },
}


@register_experiment(
    "afm",
    config=AFMConfig,
    scales=SCALES,
    demo=False,
    paper="Apple Intelligence Foundation Language Models: Tech Report 2025 (arXiv 2507.13575)",
)
def run(config: AFMConfig, *, out_dir: Path | None = None) -> Result:
    """Every study of the experiment; claims, metrics and figures."""
    check_seeds(config.seeds)
    device = resolve_device(config.device)  # an unavailable device fails before any work
    with torch_threads(config.threads):
        data = _measure(config, device)
    claims, metrics, baselines = claims_and_metrics(data, config)
    figures: list[str] = []
    if out_dir is not None:
        figures = plot_all(data, Path(out_dir))
        atomic_write_text(Path(out_dir) / "afm_runs.json", json.dumps(data, indent=1))
    return seeded_result(
        "afm", config, metrics=metrics, baselines=baselines, claims=claims, figures=figures
    )


def _measure(config: AFMConfig, device: torch.device) -> dict[str, Any]:
    corpus = stdlib_corpus(heldout_package=config.heldout_package, max_bytes=config.corpus_bytes)
    budget = core.Budget(
        config.steps,
        config.batch_size,
        config.context,
        config.lr,
        config.eval_batches,
        config.eval_seed,
    )
    data: dict[str, Any] = {
        "corpus": {k: v for k, v in corpus.to_dict().items() if k != "files"},
        "kv_ratio": core.kv_cache_ratios(core.lm_config(config, 3 / 8), config.kv_lengths, device),
        "seeds": {},
    }
    bases: dict[int, ByteLM] = {}
    bar = tqdm(total=len(config.seeds) + 3, desc="afm", unit="study", disable=not config.progress)
    for seed in config.seeds:
        runs: dict[str, Any] = {}
        for name, share in (("base", 0.0), ("kv_share", 3 / 8)):
            seed_everything(seed)
            model = ByteLM(core.lm_config(config, share)).to(device)  # CPU init, then moved
            runs[name] = core.train_and_score(model, corpus, budget, seed)
            if name == "base":
                bases[seed] = model
        runs.update(extra.track_runs(config, corpus, budget, seed, bases[seed]))
        data["seeds"][seed] = runs
        bar.update()
    first = config.seeds[0]
    base = bases[first]
    data["qat"] = core.qat_study(base, corpus, budget, first, config.qat_steps, config.finetune_lr)
    bar.update()
    data["lora"] = core.lora_study(
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
    data.update(extra.static_checks(config, device))
    guided = extra.guided_study(config, base, first)
    if guided is not None:
        data["guided"] = guided
    data["perf"] = _perf(config, base)
    bar.update()
    bar.close()
    return data


def _perf(config: AFMConfig, base: ByteLM) -> dict[str, float]:
    """Decode speed of the trained baseline and prefill time with and without skipping, on the
    baseline's device."""
    seed_everything(0)
    shared = ByteLM(core.lm_config(config, 3 / 8)).to(model_device(base)).eval()
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
