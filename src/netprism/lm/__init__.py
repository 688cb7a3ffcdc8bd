"""A tiny byte-level language model and the Apple Foundation Models 2025 ideas built on it.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575).
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
    "sample_next",
    "split_files",
    "stdlib_corpus",
]
