"""Training, evaluation in bits per byte, and safetensors save/load for the tiny byte LM.

The language model of "Apple Intelligence Foundation Language Models: Tech Report 2025"
(arXiv 2507.13575), reproduced at CPU scale: AdamW on the next-byte cross-entropy with a linear
warmup then cosine decay of the learning rate (nanoGPT's schedule), validation in bits per byte
(mean cross-entropy in nats over ``ln 2``).  Only parameters with ``requires_grad`` are optimised,
so the same loop fine-tunes LoRA adapters (:mod:`netprism.lm.lora`) with the base frozen.  The
loop is the training engine's (:func:`netprism.train.fit`), with the schedule and the
per-step history as its hooks.

A saved model is a directory: ``model.safetensors`` (the state dict) then ``config.json``
(the :class:`~netprism.lm.model.LMConfig` and the weights' SHA-256), each written atomically;
the JSON is the commit marker.  ``torch.load`` is never used.  The atomic safetensors write and
the file hash are those of the training engine's checkpoints (:mod:`netprism.train.checkpoint`).
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open

from netprism.io import atomic_write_text, load_json
from netprism.lm.corpus import BatchSampler, ByteWindows
from netprism.lm.lora import lora_modules
from netprism.lm.model import ByteLM, LMConfig
from netprism.train import Batch, BatchOutput, TrainConfig, TrainContext, fit
from netprism.train.checkpoint import sha256_file, write_safetensors
from netprism.train.optim import trainable_parameters

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
    """Mean next-byte cross-entropy (nats) of a ``(B, T + 1)`` byte batch (moved to the
    model's device)."""
    batch = batch.to(next(model.parameters()).device)
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
    on_eval: Callable[[int, float], object] | None = None,
) -> TrainHistory:
    """Train ``model`` in place on next-byte prediction over seeded windows of ``corpus_split``.

    AdamW (betas 0.9, 0.95) over the parameters that require grad, learning rate warmed up
    linearly for ``warmup`` steps (default ``steps // 10``) then cosine-decayed to ``lr / 10``,
    gradient-norm clipping.  The training loop is the engine's (:func:`netprism.train.fit`):
    the windows are a :class:`~netprism.lm.corpus.ByteWindows` dataset, the steps one epoch
    whose plan is ``steps`` batches of random window starts, the loss the mean next-byte
    cross-entropy over all ``B * T`` positions.  The global RNG is forked, so the caller's
    state is untouched.

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
    on_eval : callable, optional
        Called as ``on_eval(step, val_bpb)`` after each evaluation (progress reporting).

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
    params = trainable_parameters(model)
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad is False everywhere)")
    windows = ByteWindows(corpus_split, context)
    sampler = BatchSampler(corpus_split, batch_size=batch_size, context=context, seed=seed)
    plan = sampler.plan(steps)  # (steps,) batches of window starts: the one epoch
    validation = None if val is None else _Validation(val, context, eval_batches, seed, eval_every)
    hist = TrainHistory()
    schedule = functools.partial(
        lr_at, steps=steps, lr=lr, warmup=max(1, steps // 10) if warmup is None else warmup
    )
    recorder = _StepRecorder(schedule, steps, hist, validation, on_eval)
    config = TrainConfig(
        epochs=1, batch_size=batch_size, lr=lr, seed=seed, scheduler="none",
        device=str(params[0].device), progress=False, max_grad_norm=grad_clip,
    )  # fmt: skip
    adamw = functools.partial(
        torch.optim.AdamW, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay
    )
    # torch.manual_seed seeds CUDA too: fork the model's CUDA generator as well, so the
    # caller's RNG state is untouched on every device
    device = params[0].device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        fit(
            model, windows, config, callbacks=[recorder], order=lambda epoch: plan,
            optimizer=adamw, reseed=False, distributed=False,
        )  # fmt: skip
    return hist


@dataclass(frozen=True)
class _Validation:
    """Where and how often :func:`train_lm` measures validation bits per byte."""

    data: np.ndarray
    context: int
    batches: int
    seed: int
    every: int | None

    def due(self, done: int, steps: int) -> bool:
        return done == steps or bool(self.every and done % self.every == 0)


class _StepRecorder:
    """The hooks of :func:`train_lm`: the learning rate of each step set before it, then the
    step's loss, rate and (when due) validation bits per byte recorded in a history."""

    def __init__(
        self,
        schedule: Callable[[int], float],
        steps: int,
        history: TrainHistory,
        validation: _Validation | None,
        on_eval: Callable[[int, float], object] | None,
    ) -> None:
        self.schedule, self.steps, self.history = schedule, steps, history
        self.validation, self.on_eval = validation, on_eval
        self.done = 0

    def on_batch_start(self, ctx: TrainContext, batch: Batch) -> None:
        rate = self.schedule(self.done)
        for group in ctx.optimizer.param_groups:
            group["lr"] = rate
        self.history.lr.append(rate)

    def on_batch_end(self, ctx: TrainContext, out: BatchOutput) -> None:
        self.done += 1
        self.history.step.append(self.done)
        self.history.train_loss.append(float(out.loss.mean()))  # the mean that was minimised
        check = self.validation
        if check is None or not check.due(self.done, self.steps):
            return
        bpb = evaluate_bpb(ctx.model, check.data, check.context, check.batches, check.seed)
        self.history.val_step.append(self.done)
        self.history.val_bpb.append(bpb)
        if self.on_eval is not None:
            self.on_eval(self.done, bpb)


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
    write_safetensors(directory / WEIGHTS, model.state_dict())
    meta = {"config": config.to_dict(), "sha256": sha256_file(directory / WEIGHTS)}
    atomic_write_text(directory / CONFIG, json.dumps(meta, indent=1))
    return directory


def load_lm(path: str | Path) -> tuple[ByteLM, LMConfig]:
    """Rebuild a :class:`ByteLM` and its config from a :func:`save_lm` directory (eval mode).

    Everything is checked before the model is built: the JSON config, the weights' SHA-256,
    the safetensors header (names, shapes and dtypes against a ``meta``-device model, so a
    config declaring a huge model fails without allocating it), then finiteness.  Nothing is
    unpickled.

    Raises
    ------
    ValueError
        The message names the file and the problem: no or unreadable ``config.json``, an
        invalid config, missing weights, a SHA-256 mismatch (truncated or corrupted weights),
        a file that is not safetensors, missing/unexpected tensors, a shape or dtype mismatch,
        or non-finite weights.
    """
    directory = Path(path)
    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    if not config_path.is_file():
        raise ValueError(f"{str(directory)!r} holds no {CONFIG} (not a save_lm directory)")
    try:
        meta = load_json(config_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_path}: unreadable JSON ({err})") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{config_path}: expected a JSON object with a 'config' object")
    try:
        config = LMConfig(**meta["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_path}: invalid LM config ({err})") from err
    try:
        digest = sha256_file(weights_path)
    except OSError as err:
        raise ValueError(f"{weights_path}: cannot read the weights ({err})") from err
    if digest != meta.get("sha256"):
        raise ValueError(
            f"{weights_path} does not match the SHA-256 in {CONFIG} (truncated or corrupted)"
        )
    bad = {"rope_theta": config.rope_theta, "norm_eps": config.norm_eps}
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in bad.values()):
        raise ValueError(f"{config_path}: rope_theta and norm_eps must be finite > 0, got {bad}")
    _check_layer_count(weights_path, config)  # before building 2**31 layers, even on meta
    try:  # shapes only: a config declaring a huge model allocates nothing here
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "zero-element tensors" from a d_ff of 0
            skeleton = ByteLM(config)
    except (RuntimeError, ValueError, TypeError, OverflowError) as err:
        raise ValueError(f"{config_path}: config does not build a ByteLM ({err})") from err
    expected = skeleton.state_dict()
    _check_derived_size(skeleton, expected, weights_path, config_path)
    state = _read_weights(weights_path, expected)
    model = ByteLM(config)
    model.load_state_dict(state)
    return model.eval(), config


def _read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, checked against ``expected``'s names, shapes and dtypes from
    the safetensors header before any is loaded, then for finiteness."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            if names != set(expected):
                missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
                raise ValueError(
                    f"{path}: tensors do not match the config: missing {missing[:5]}, "
                    f"unexpected {extra[:5]}"
                )
            for name, want in expected.items():
                shape, dtype = tuple(f.get_slice(name).get_shape()), f.get_slice(name).get_dtype()
                if shape != tuple(want.shape) or _DTYPES.get(dtype) != want.dtype:
                    raise ValueError(
                        f"{path}: tensor {name} is {dtype} {shape}, the config needs "
                        f"{want.dtype} {tuple(want.shape)}"
                    )
            state = {k: f.get_tensor(k) for k in expected}
    except SafetensorError as err:
        raise ValueError(f"{path}: not a valid safetensors file ({err})") from err
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: tensor {name} holds NaN or inf values")
    return state


def _check_layer_count(weights: Path, config: LMConfig) -> None:
    """The config's ``n_layers`` against the layers named in the weights' header."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            names = list(f.keys())
    except SafetensorError as err:
        raise ValueError(f"{weights}: not a valid safetensors file ({err})") from err
    indices = {int(m.group(1)) for m in map(_LAYER.match, names) if m is not None}
    if len(indices) != config.n_layers or indices != set(range(len(indices))):
        raise ValueError(
            f"{weights} holds {len(indices)} layers but the config declares "
            f"n_layers={config.n_layers}"
        )


_LAYER = re.compile(r"^layers\.(\d+)\.")


def _check_derived_size(
    skeleton: ByteLM, saved: dict[str, torch.Tensor], weights: Path, config_path: Path
) -> None:
    """Refuse a config whose tensors built from it alone (RoPE tables, sized by ``context``)
    dwarf the saved weights: a corrupt ``context`` would otherwise allocate them for real."""
    derived = sum(
        b.numel() * b.element_size() * 2  # built in float64, stored in float32
        for name, b in skeleton.named_buffers()
        if name not in saved
    )
    limit = max(MAX_DERIVED_BYTES, 4 * weights.stat().st_size)
    if derived > limit:
        raise ValueError(
            f"{config_path}: context={skeleton.config.context} would need {derived} bytes of "
            f"buffers beyond the {weights.stat().st_size}-byte weights (limit {limit}); "
            f"the config looks corrupt"
        )


MAX_DERIVED_BYTES = 1 << 28  # 256 MiB: a 2**16 context at head_dim 128 needs 64 MiB
_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}
