"""A tiny byte-level language model and the Apple Foundation Models 2025 ideas built on it.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575).
Modules: ``corpus`` (stdlib byte corpus), ``config`` (``LMConfig``), ``layers`` (RMSNorm, RoPE
tables, GPT-2 init, input checks shared by the three LMs), ``model`` (``ByteLM`` with KV
sharing), ``kv_cache`` (its caches, 8-bit too), ``train`` (training loop, bits per byte,
safetensors save/load), ``quant`` (2-bit QAT, PTQ, packing), ``formats`` (Q2_K, 4-bit
embeddings), ``lora`` (adapters), ``parallel_track`` (parallel-track MoE), ``local_global``
(interleaved sliding-window / NoPE global attention), ``bench`` (prefill and decode timing),
``factories`` (``byte_lm``, ``local_global_lm``, ``parallel_track_lm`` in the model registry)
and the ``guided`` subpackage (JSON-Schema-constrained decoding and tool calling).  The
``netprism lm train|generate|adapt`` commands live in :mod:`netprism.cli.lm`.

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/lm.md`` in the repository.
"""

from netprism.lm.bench import decode_tokens_per_s, prefill_ms
from netprism.lm.corpus import (
    EOS,
    SPLITS,
    BatchSampler,
    ByteCorpus,
    ByteWindows,
    bits_per_byte,
    corpus_sha256,
    split_files,
    stdlib_corpus,
)
from netprism.lm.factories import byte_lm, local_global_lm, parallel_track_lm
from netprism.lm.guided import (
    SchemaAutomaton,
    Tool,
    ToolCall,
    UnsupportedSchemaError,
    call_tool,
    compile_schema,
    compile_tagged_union,
    guided_generate,
    mask_overhead,
    run_tool_loop,
    stream_guided,
    unconstrained_generate,
    validity_rate,
)
from netprism.lm.local_global import LocalGlobalConfig, LocalGlobalLM, all_global_baseline
from netprism.lm.model import ByteLM, KVCache, LMConfig, sample_next
from netprism.lm.parallel_track import ParallelTrackLM, PTConfig, count_params
from netprism.lm.train import evaluate_bpb, load_lm, save_lm, train_lm

__all__ = [
    "BatchSampler",
    "ByteCorpus",
    "ByteLM",
    "ByteWindows",
    "EOS",
    "KVCache",
    "LMConfig",
    "LocalGlobalConfig",
    "LocalGlobalLM",
    "PTConfig",
    "ParallelTrackLM",
    "SPLITS",
    "SchemaAutomaton",
    "Tool",
    "ToolCall",
    "UnsupportedSchemaError",
    "all_global_baseline",
    "bits_per_byte",
    "byte_lm",
    "call_tool",
    "compile_schema",
    "compile_tagged_union",
    "corpus_sha256",
    "count_params",
    "decode_tokens_per_s",
    "evaluate_bpb",
    "guided_generate",
    "load_lm",
    "local_global_lm",
    "mask_overhead",
    "parallel_track_lm",
    "prefill_ms",
    "run_tool_loop",
    "sample_next",
    "save_lm",
    "split_files",
    "stdlib_corpus",
    "stream_guided",
    "train_lm",
    "unconstrained_generate",
    "validity_rate",
]
