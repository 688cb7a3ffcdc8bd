"""Seeding: one call makes a run repeatable on the same machine."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (seeding the global state is the point)
    torch.manual_seed(seed)


def make_generator(seed: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with ``seed`` (no global state touched)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (``0``: leave torch's setting alone).

    Tiny models run fastest on one thread; more threads than free cores slow everything.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"threads must be an int >= 0, got {n!r}")
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
