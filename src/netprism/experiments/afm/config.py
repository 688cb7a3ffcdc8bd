"""Config and scales of the ``afm`` experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    # lora_adapts_faithful (pre-registered before its first run, target unchanged): on each
    # seed of faithful_seeds, from the base already trained for that seed, LoRA at lora_rank /
    # lora_alpha and full fine-tuning for faithful_lora_steps steps at every rate of their
    # grids; each method keeps the rate that scores best on the last faithful_select_fraction
    # of the adaptation half (never on the scoring half); held-out curves every
    # faithful_eval_every steps; on the first faithful seed LoRA also at faithful_curve_ranks
    # (alpha = 2 x rank) at LoRA's chosen rate.  measured = mean over seeds of LoRA's drop /
    # full fine-tuning's.  Opt-in: () here, so the small run does not pay for it; with
    # `netprism run afm --scale small --faithful-seeds 0,1,2` it adds four 600-step arms and
    # ~60 evaluations per seed (2,400 steps: ~11 min at 0.25 s/step, ~14 min at the 0.33 s/step
    # measured on one loaded core) and ranks 8 and 16 on the first (~5-7 min): ~40-50 min
    faithful_seeds: tuple[int, ...] = ()
    faithful_lora_steps: int = 600
    faithful_lora_lrs: tuple[float, ...] = (1e-3, 3e-3)
    faithful_full_lrs: tuple[float, ...] = (3e-4, 1e-3)
    faithful_select_fraction: float = 0.1
    faithful_eval_every: int = 50
    faithful_curve_ranks: tuple[int, ...] = (4, 8, 16)
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
        "faithful_seeds": (0,),
        "faithful_lora_steps": 4,
        "faithful_eval_every": 2,
        "faithful_curve_ranks": (4, 8),
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
        "faithful_seeds": (0, 1, 2),
        "faithful_lora_steps": 4000,  # 4 x lora_steps, as 600 = 4 x 150 at small
        "faithful_eval_every": 250,
        "lg_window": 64,
        "lg_lengths": (256, 1024, 4096, 16384),
        "guided_samples": 2000,
    },
}
