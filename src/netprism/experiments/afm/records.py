"""What the ``afm`` experiment measures: one JSON-ready tree of plain numbers.

The runs are saved as they are (``afm_runs.json``), so they stay a dict rather than
dataclasses.  Keys:

- ``corpus``: the corpus summary (sizes, held-out package; no file list).
- ``kv_ratio``: length -> shared / baseline KV-cache bytes.
- ``seeds``: seed -> ``{"base", "kv_share", "pt_moe", "pt_load_entropy", "local_global",
  "local_global_x2", "local_global_x4", "base_x2", "base_x4"}`` (validation bpb, entropy).
- ``qat``, ``lora``: the first seed's 2-bit and adaptation studies (name -> number).
- ``pt``, ``local_global``: the counted syncs and parameters, and the KV-byte ratios.
- ``guided`` (when run): validity rates and mask timings; ``perf``: decode and prefill timings.
- ``lora_faithful``: seed -> the faithful LoRA twin's record (empty unless ``faithful_seeds``):
  base / chosen LoRA / chosen full fine-tuning bpb (held-out scoring half, general val), drops,
  ``ratio``, chosen rates, ``arms`` (label -> rank, alpha, lr, selection bpb, curve ``step`` /
  ``bpb``) and, on the first faithful seed, ``ranks`` (rank -> held-out, drop, general val, arm).
"""

from __future__ import annotations

from typing import Any, TypeAlias

AFMRuns: TypeAlias = dict[str, Any]
