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
  (e) guided generation validity; (f) LoRA vs full fine-tuning on the held-out package, and
  its faithful twin (opt-in, ``faithful_seeds``: longer adaptation at chosen rates, every
  seed; :mod:`netprism.experiments.afm.lora_faithful`).

Device: ``--device`` (default ``auto``: CUDA when present) holds every model: training, scoring,
cache measurements, decoding and the prefill/decode timings (synchronized on CUDA).  Models are
initialised on the CPU from the seed and then moved, so each device starts from the same
weights; batch windows are drawn on the CPU and moved.  What stays on the CPU: the schema
masks of guided decoding (a byte automaton in Python), its sampling generator (seeded draws
that do not depend on the device), and the local/global cache-byte count (allocation only).

Method note: ``docs/methods/lm.md`` in the repository.
"""

from __future__ import annotations

from netprism.experiments.afm.claims import claims_and_metrics
from netprism.experiments.afm.config import SCALES, AFMConfig
from netprism.experiments.afm.figures import draw
from netprism.experiments.afm.lora_faithful import check_faithful
from netprism.experiments.afm.run import measure
from netprism.experiments.base import SeedStudy, register_experiment

STUDY = SeedStudy(
    "afm", measure=measure, claims=claims_and_metrics, figures=draw, validate=check_faithful
)
run = register_experiment(
    "afm",
    config=AFMConfig,
    scales=SCALES,
    demo=False,
    cost=34,  # rough CPU minutes at small
    paper="Apple Intelligence Foundation Language Models: Tech Report 2025 (arXiv 2507.13575)",
)(STUDY.run)

__all__ = ["SCALES", "STUDY", "AFMConfig", "run"]
