"""A tiny byte-level language model and the Apple Foundation Models 2025 ideas built on it.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575).
Modules: ``corpus`` (stdlib byte corpus), ``model`` (``ByteLM`` with KV cache and KV sharing),
``train`` (training loop, bits per byte, safetensors save/load), ``quant`` (2-bit QAT, PTQ,
packing), ``formats`` (Q2_K, 4-bit embeddings, 8-bit KV cache) and ``lora`` (adapters).
"""

from netprism.lm.corpus import (
    EOS,
    SPLITS,
    BatchSampler,
    ByteCorpus,
    bits_per_byte,
    corpus_sha256,
    split_files,
    stdlib_corpus,
)
from netprism.lm.model import ByteLM, KVCache, LMConfig, sample_next
from netprism.lm.train import evaluate_bpb, load_lm, save_lm, train_lm

__all__ = [
    "EOS",
    "SPLITS",
    "BatchSampler",
    "ByteCorpus",
    "ByteLM",
    "KVCache",
    "LMConfig",
    "bits_per_byte",
    "corpus_sha256",
    "evaluate_bpb",
    "load_lm",
    "sample_next",
    "save_lm",
    "split_files",
    "stdlib_corpus",
    "train_lm",
]
