"""Training, evaluation in bits per byte, and safetensors save/load for the tiny byte LM.

The language model of "Apple Intelligence Foundation Language Models: Tech Report 2025"
(arXiv 2507.13575), reproduced at CPU scale: AdamW on the next-byte cross-entropy with a linear
warmup then cosine decay of the learning rate (nanoGPT's schedule), validation in bits per byte
(mean cross-entropy in nats over ``ln 2``).  Only parameters with ``requires_grad`` are optimised,
so the same loop fine-tunes LoRA adapters (:mod:`netprism.lm.lora`) with the base frozen.

A saved model is a directory: ``model.safetensors`` (the state dict) then ``config.json``
(the :class:`~netprism.lm.model.LMConfig` and the weights' SHA-256), each written atomically;
the JSON is the commit marker.  ``torch.load`` is never used.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from netprism.io import atomic_write, atomic_write_text
from netprism.lm.corpus import BatchSampler
from netprism.lm.lora import lora_modules
from netprism.lm.model import ByteLM, LMConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class TrainHistory:
    """Per-step training loss and learning rate; validation bits per byte at eval steps."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # nats per byte
    lr: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_bpb: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


def lr_at(step: int, *, steps: int, lr: float, warmup: int, min_ratio: float = 0.1) -> float:
    """Learning rate at 0-based ``step``: linear warmup to ``lr``, then cosine to ``min_ratio*lr``.

    >>> [round(lr_at(s, steps=10, lr=1.0, warmup=2), 3) for s in (0, 1, 2, 9)]
    [0.5, 1.0, 1.0, 0.134]
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)  # in [0, 1)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def next_byte_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy (nats) of a ``(B, T + 1)`` byte batch."""
    x, y = batch[:, :-1].long(), batch[:, 1:].long()  # (B, T) inputs and targets
    logits = model(x)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate_bpb(
    model: torch.nn.Module,
    data: np.ndarray,
    context: int,
    batches: int,
    seed: int,
    *,
    batch_size: int = 8,
) -> float:
    """Bits per byte of ``model`` on ``batches`` seeded random windows of ``data``.

    The windows are those of ``BatchSampler(data, batch_size=B, context=T, seed=seed)``; the
    result is their mean next-byte cross-entropy over ``ln 2``.  The model runs in eval mode and
    its train/eval mode is restored.

    Parameters
    ----------
    model : nn.Module
        ``(B, T)`` byte ids to ``(B, T, 256)`` logits.
    data : ndarray (N,) uint8
    context : int
        ``T``.
    batches : int
        Number of batches of ``batch_size`` windows.
    seed : int

    Returns
    -------
    float

    Examples
    --------
    >>> model = ByteLM(LMConfig(context=8, n_layers=1, d_model=8, n_heads=1, n_kv_heads=1))
    >>> bpb = evaluate_bpb(model, np.arange(64, dtype=np.uint8), 8, batches=2, seed=0)
    >>> 7.9 < bpb < 8.1  # an untrained model is near uniform over 256 bytes
    True
    """
    if not isinstance(batches, int) or isinstance(batches, bool) or batches < 1:
        raise ValueError(f"batches must be a positive int, got {batches!r}")
    sampler = BatchSampler(data, batch_size=batch_size, context=context, seed=seed)
    was_training = model.training
    model.eval()
    try:
        total = sum(float(next_byte_loss(model, sampler.sample())) for _ in range(batches))
    finally:
        model.train(was_training)
    return total / batches / math.log(2)


def train_lm(
    model: torch.nn.Module,
    corpus_split: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    context: int,
    lr: float,
    seed: int,
    eval_every: int | None = None,
    val: np.ndarray | None = None,
    warmup: int | None = None,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    eval_batches: int = 4,
) -> TrainHistory:
    """Train ``model`` in place on next-byte prediction over seeded windows of ``corpus_split``.

    AdamW (betas 0.9, 0.95) over the parameters that require grad, learning rate warmed up
    linearly for ``warmup`` steps (default ``steps // 10``) then cosine-decayed to ``lr / 10``,
    gradient-norm clipping.  The global RNG is forked, so the caller's state is untouched.

    Parameters
    ----------
    model : nn.Module
        ``(B, T)`` byte ids to ``(B, T, 256)`` logits.
    corpus_split : ndarray (N,) uint8
    steps, batch_size, context : int
        ``steps`` optimiser steps on ``(B, T)`` windows.
    lr : float
        Peak learning rate.
    seed : int
        Seeds the batch windows (and dropout).
    eval_every : int, optional
        With ``val``, evaluate validation bits per byte every ``eval_every`` steps and after the
        last step (default: only after the last step).
    val : ndarray (N_val,) uint8, optional

    Returns
    -------
    TrainHistory

    Examples
    --------
    >>> model = ByteLM(LMConfig(context=8, n_layers=1, d_model=8, n_heads=1, n_kv_heads=1))
    >>> data = np.frombuffer(b"abcd" * 16, dtype=np.uint8).copy()
    >>> h = train_lm(model, data, steps=3, batch_size=2, context=8, lr=1e-2, seed=0, val=data)
    >>> len(h.train_loss), h.val_step
    (3, [3])
    """
    _check_train_args(steps, lr, eval_every, warmup)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad is False everywhere)")
    warm = max(1, steps // 10) if warmup is None else warmup
    sampler = BatchSampler(corpus_split, batch_size=batch_size, context=context, seed=seed)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    hist = TrainHistory()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        for step in range(steps):
            rate = lr_at(step, steps=steps, lr=lr, warmup=warm)
            for group in opt.param_groups:
                group["lr"] = rate
            loss = next_byte_loss(model, sampler.sample())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            hist.step.append(step + 1)
            hist.train_loss.append(float(loss.detach()))
            hist.lr.append(rate)
            done = step + 1
            if val is not None and (done == steps or (eval_every and done % eval_every == 0)):
                hist.val_step.append(done)
                hist.val_bpb.append(evaluate_bpb(model, val, context, eval_batches, seed))
    return hist


def _check_train_args(steps: int, lr: float, eval_every: int | None, warmup: int | None) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"eval_every must be a positive int or None, got {eval_every!r}")
    if warmup is not None and (not isinstance(warmup, int) or not 0 <= warmup <= steps):
        raise ValueError(f"warmup must be an int in [0, steps={steps}], got {warmup!r}")


def save_lm(model: ByteLM, config: LMConfig, path: str | Path) -> Path:
    """Write ``path/model.safetensors`` then ``path/config.json``, each atomically.

    Refuses a model with unmerged LoRA adapters (``merge_lora`` it or ``save_lora`` them) and a
    ``config`` that is not the model's.  Returns the directory.
    """
    if lora_modules(model):
        raise ValueError("model has LoRA adapters: merge_lora it, or save them with save_lora")
    if getattr(model, "config", None) != config:
        raise ValueError(f"config {config!r} is not the model's config {model.config!r}")
    directory = Path(path)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS, lambda tmp: save_file(weights, str(tmp)))
    meta = {"config": config.to_dict(), "sha256": _sha256(directory / WEIGHTS)}
    atomic_write_text(directory / CONFIG, json.dumps(meta, indent=1))
    return directory


def load_lm(path: str | Path) -> tuple[ByteLM, LMConfig]:
    """Rebuild a :class:`ByteLM` and its config from a :func:`save_lm` directory (eval mode).

    Raises
    ------
    ValueError
        If the config is missing or the weights do not match its recorded SHA-256.
    """
    directory = Path(path)
    if not (directory / CONFIG).is_file():
        raise ValueError(f"{str(directory)!r} holds no {CONFIG} (not a save_lm directory)")
    meta = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    if _sha256(directory / WEIGHTS) != meta.get("sha256"):
        raise ValueError(f"{directory / WEIGHTS} does not match the SHA-256 in {CONFIG}")
    config = LMConfig(**meta["config"])
    model = ByteLM(config)
    model.load_state_dict(load_file(str(directory / WEIGHTS)))
    return model.eval(), config


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
