"""Timing a byte LM on its device: prefill latency (with and without prefill skipping) and
cached decoding throughput.

The measurements behind the KV-cache-sharing claim of *Apple Intelligence Foundation Language
Models: Tech Report 2025* (skipping the prefill work whose output a shared cache does not need),
usable on any :class:`~netprism.lm.model.ByteLM`.  On CUDA each timed pass is synchronized.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from netprism.lm.model import ByteLM

__all__ = ["decode_tokens_per_s", "model_device", "prefill_ms", "sync_device"]


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (where its batches must go)."""
    return next(model.parameters()).device


def sync_device(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels before reading the clock (CUDA runs
    asynchronously; a CPU has nothing queued)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prefill_ms(model: ByteLM, length: int, repeats: int) -> dict[str, float]:
    """Median prefill time of a ``length``-byte prompt, with and without prefill skipping,
    on the model's device (synchronized around each pass on CUDA)."""
    device = model_device(model)
    gen = torch.Generator().manual_seed(0)  # the same prompt on every device
    idx = torch.randint(0, 256, (1, length), generator=gen).to(device)
    times: dict[str, list[float]] = {"skip": [], "full": []}
    model.eval()
    with torch.no_grad():
        for _ in range(repeats):
            for key, last_only in (("skip", True), ("full", False)):
                cache = model.new_cache(1, max_len=length)
                sync_device(device)
                start = time.perf_counter()
                model(idx, cache=cache, last_only=last_only)
                sync_device(device)
                times[key].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def decode_tokens_per_s(model: ByteLM, prompt: int, new: int, batch: int = 1) -> float:
    """Bytes per second of cached sampling after a ``prompt``-byte prefill (prefill excluded),
    on the model's device; the sampling generator lives there too, so no step waits on a copy
    to the CPU."""
    device = model_device(model)
    gen = torch.Generator(device=device).manual_seed(0)
    idx = torch.randint(0, 256, (batch, prompt), generator=gen, device=device)
    model.eval()
    with torch.no_grad():
        cache = model.new_cache(batch, max_len=prompt + new)
        logits = model(idx, cache=cache, last_only=True)[:, -1]
        sync_device(device)
        start = time.perf_counter()
        for _ in range(new):
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
            logits = model(nxt, cache=cache)[:, -1]
        sync_device(device)
        seconds = time.perf_counter() - start
    return batch * new / seconds
