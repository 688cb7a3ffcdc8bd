"""Guided (schema-constrained) decoding for the byte LM, with budget forcing and streaming.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575): the
Foundation Models framework's guided generation masks every token that would make the output
invalid, so the result always parses into the requested type; ``PartiallyGenerated`` types
stream.  Here the mask comes from :mod:`netprism.lm.guided.schema` (a byte-level pushdown
automaton).

**Budget forcing.**  With ``r`` output bytes left, byte ``b`` is allowed only if ``1 +
min_close(after b) <= r``, so every output closes within ``max_bytes``.  The stop signal
:data:`~netprism.lm.guided.schema.END` (``\\n``) ends an ambiguous top-level value, costs no budget
and is not part of the output; a row whose budget is spent while accepting simply stops.

**Unconstrained contrast.**  :func:`unconstrained_generate` samples ``max_bytes`` bytes with no
mask; :func:`is_valid` parses the text *up to the first newline* (the same stop signal), so a
model that emits a valid value and then ``\\n`` counts as valid, as it would under guidance.
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from netprism.lm.guided.schema import END, SchemaAutomaton, State, compile_schema
from netprism.lm.model import ByteLM, sample_next

PAD = 0x20  # fed to rows that have finished; their outputs are ignored


@dataclass
class GuidedTimings:
    """Wall time split of one guided run: mask building vs model forward passes."""

    mask_s: float = 0.0  # allowed-byte masks and automaton advances
    model_s: float = 0.0  # one-byte cached forward passes
    prefill_s: float = 0.0
    steps: int = 0  # decoding steps (one byte per active row each)
    tokens: int = 0  # output bytes produced over all rows

    @property
    def mask_us_per_step(self) -> float:
        return 1e6 * self.mask_s / max(self.steps, 1)

    @property
    def model_us_per_step(self) -> float:
        return 1e6 * self.model_s / max(self.steps, 1)


def _as_automaton(schema: dict[str, Any] | SchemaAutomaton) -> SchemaAutomaton:
    return schema if isinstance(schema, SchemaAutomaton) else compile_schema(schema)


def _prompt_ids(model: ByteLM, prompt: str | bytes, max_bytes: int) -> torch.Tensor:
    data = prompt.encode("utf-8") if isinstance(prompt, str) else bytes(prompt)
    if not data:
        raise ValueError("prompt must hold at least one byte, got an empty prompt")
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    ctx = model.config.context
    if max_bytes >= ctx:
        raise ValueError(
            f"max_bytes={max_bytes} leaves no room for a prompt in the model's context of {ctx}; "
            f"use at most {ctx - len(data)}"
        )
    if len(data) + max_bytes > ctx:
        raise ValueError(
            f"prompt of {len(data)} bytes + max_bytes={max_bytes} is longer than the model's "
            f"context of {ctx}; shorten the prompt to at most {ctx - max_bytes} bytes"
        )
    device = model.embed.weight.device
    return torch.tensor(list(data), dtype=torch.long, device=device)[None]  # (1, T0)


def _sync(t: torch.Tensor) -> None:
    """Wait for ``t``'s CUDA kernels, so wall-clock timings charge them to the model step
    (CUDA launches are asynchronous); nothing to wait for on CPU."""
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


@torch.no_grad()
def _decode(
    model: ByteLM,
    prompt: str | bytes,
    automaton: SchemaAutomaton,
    *,
    max_bytes: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
    num_samples: int,
    timings: GuidedTimings,
) -> Iterator[list[int | None]]:
    """Yield, per step, each row's new output byte (``None`` when it produced none)."""
    idx = _prompt_ids(model, prompt, max_bytes)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    need = automaton.min_close(automaton.initial)
    if need > max_bytes:
        raise ValueError(f"max_bytes={max_bytes} is below the shortest valid output ({need} bytes)")
    B = num_samples
    states: list[State] = [automaton.initial] * B
    left = [max_bytes] * B  # output bytes each row may still write
    active = [True] * B
    t0 = time.perf_counter()
    cache = model.new_cache(B, max_len=idx.shape[1] + max_bytes)
    logits = model(idx.expand(B, -1), cache=cache, last_only=True)[:, -1]  # (B, 256)
    _sync(logits)
    timings.prefill_s += time.perf_counter() - t0
    while any(active):
        t0 = time.perf_counter()
        allowed = automaton.batch_masks(states, torch.tensor(left))  # (B, 256)
        if not all(active):  # finished rows hold the done state (nothing allowed): feed a pad
            allowed[:, PAD] |= ~torch.tensor(active)
        t1 = time.perf_counter()
        masked = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
        nxt = sample_next(masked, temperature=temperature, top_k=top_k, generator=generator)
        t2 = time.perf_counter()
        step: list[int | None] = [None] * B
        for i, b in enumerate(nxt[:, 0].tolist()):
            if not active[i]:
                continue
            states[i] = automaton.advance(states[i], b)
            if b != END:
                step[i] = b
                left[i] -= 1
            if automaton.is_done(states[i]) or (left[i] == 0 and automaton.is_accepting(states[i])):
                active[i], states[i] = False, ()
        timings.mask_s += (t1 - t0) + (time.perf_counter() - t2)  # masks + automaton steps
        timings.steps += 1
        timings.tokens += sum(s is not None for s in step)
        yield step
        if any(active):
            t3 = time.perf_counter()
            logits = model(nxt, cache=cache)[:, -1]
            _sync(logits)
            timings.model_s += time.perf_counter() - t3


def guided_generate(
    model: ByteLM,
    prompt: str | bytes,
    schema: dict[str, Any] | SchemaAutomaton,
    *,
    max_bytes: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    num_samples: int = 1,
    return_timings: bool = False,
) -> list[str] | tuple[list[str], GuidedTimings]:
    """Sample ``num_samples`` outputs that are valid instances of ``schema``.

    Parameters
    ----------
    model : ByteLM
    prompt : str or bytes
        Non-empty; ``len(prompt) + max_bytes`` must fit in ``model.config.context``.
    schema : dict or SchemaAutomaton
        A schema of the supported subset (see :mod:`netprism.lm.guided.schema`) or its compiled
        form.
    max_bytes : int
        Hard budget on output bytes; every output closes within it (budget forcing).
    temperature, top_k, generator
        As in :func:`~netprism.lm.model.sample_next`, applied to the masked logits.
    num_samples : int
        ``B`` independent rows decoded together with one KV cache ``(B, ...)``.
    return_timings : bool
        Also return a :class:`GuidedTimings` (mask vs model time).

    Returns
    -------
    list of B str (and the timings)

    Examples
    --------
    >>> from netprism.lm.model import LMConfig
    >>> m = ByteLM(LMConfig(context=64, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1))
    >>> s = {"type": "integer", "minimum": -5, "maximum": 5}
    >>> all(-5 <= int(t) <= 5 for t in guided_generate(m, "x=", s, max_bytes=4, num_samples=3))
    True
    """
    automaton = _as_automaton(schema)
    timings = GuidedTimings()
    out = [bytearray() for _ in range(num_samples)]
    for step in _decode(
        model,
        prompt,
        automaton,
        max_bytes=max_bytes,
        temperature=temperature,
        top_k=top_k,
        generator=generator,
        num_samples=num_samples,
        timings=timings,
    ):
        for i, b in enumerate(step):
            if b is not None:
                out[i].append(b)
    texts = [o.decode("utf-8") for o in out]  # the automaton writes whole UTF-8 characters
    return (texts, timings) if return_timings else texts


def stream_guided(
    model: ByteLM,
    prompt: str | bytes,
    schema: dict[str, Any] | SchemaAutomaton,
    *,
    max_bytes: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[str]:
    """Yield the text of one guided sample chunk by chunk (one character each) as it is decoded.

    ``"".join(stream_guided(...))`` equals :func:`guided_generate`'s output for the same seed.
    """
    steps = _decode(
        model,
        prompt,
        _as_automaton(schema),
        max_bytes=max_bytes,
        temperature=temperature,
        top_k=top_k,
        generator=generator,
        num_samples=1,
        timings=GuidedTimings(),
    )
    decoder = codecs.getincrementaldecoder("utf-8")()
    for step in steps:
        if step[0] is not None:
            text = decoder.decode(bytes(step[:1]))  # type: ignore[arg-type]
            if text:
                yield text


@torch.no_grad()
def unconstrained_generate(
    model: ByteLM,
    prompt: str | bytes,
    *,
    max_bytes: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    num_samples: int = 1,
) -> list[str]:
    """Plain sampling of ``max_bytes`` bytes per row (no mask), decoded with replacement chars."""
    idx = _prompt_ids(model, prompt, max_bytes).expand(num_samples, -1)
    ids = model.generate(
        idx, max_bytes, temperature=temperature, top_k=top_k, generator=generator
    )  # (B, T0 + max_bytes)
    return [bytes(r).decode("utf-8", "replace") for r in ids[:, idx.shape[1] :].tolist()]


def is_valid(text: str, schema: dict[str, Any]) -> bool:
    """Whether ``text`` up to its first newline parses with ``json.loads`` and validates."""
    import jsonschema  # test/benchmark dependency only

    try:
        jsonschema.validate(json.loads(text.split("\n", 1)[0]), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def validity_rate(texts: list[str], schema: dict[str, Any]) -> float:
    """Fraction of ``texts`` that :func:`is_valid` accepts."""
    return sum(is_valid(t, schema) for t in texts) / max(len(texts), 1)


def mask_overhead(
    model: ByteLM,
    prompt: str | bytes,
    schema: dict[str, Any],
    *,
    max_bytes: int,
    num_samples: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Time masks (and automaton steps) against model steps over guided runs.

    Two runs with the same seed decode the same bytes: *cold* on a freshly compiled automaton
    (every state built on first sight) and *warm* replaying it (all per-state caches hit).

    Returns
    -------
    dict with ``cold_mask_us``, ``warm_mask_us`` and ``model_us`` per decoding step, and
    ``cold_pct``, ``warm_pct`` (mask time as a percentage of model time), ``steps``
    """
    automaton = compile_schema(schema)
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(seed)
        _, t = guided_generate(
            model,
            prompt,
            automaton,
            max_bytes=max_bytes,
            num_samples=num_samples,
            generator=g,
            return_timings=True,
        )
        assert isinstance(t, GuidedTimings)
        runs.append(t)
    cold, warm = runs
    model_s = (cold.model_s + warm.model_s) / 2
    return {
        "cold_mask_us": cold.mask_us_per_step,
        "warm_mask_us": warm.mask_us_per_step,
        "model_us": 1e6 * model_s / max(cold.steps, 1),
        "cold_pct": 100 * cold.mask_s / max(model_s, 1e-12),
        "warm_pct": 100 * warm.mask_s / max(model_s, 1e-12),
        "steps": float(cold.steps),
    }
