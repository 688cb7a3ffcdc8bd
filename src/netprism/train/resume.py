"""Writing a fit's state after each epoch and resuming from it (see :mod:`.checkpoint`).

Every checkpoint records the run it belongs to: the config (whose run-defining fields are
:meth:`TrainConfig.run_fields <netprism.train.TrainConfig.run_fields>`) and a fingerprint of
the model (class, every ``state_dict`` key with its shape and dtype) and of the optimizer
(class, parameter groups with their sizes and hyper-parameters).  ``resume=True`` continues a
checkpoint only when all of these match the current run and its epoch lies in
``[0, epochs - 1]``; otherwise :class:`ResumeMismatchError` names every difference.
``resume="weights-only"`` is the deliberate way across a change: it loads the model weights
alone (same keys and shapes) and the run starts at epoch 0.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.train.callbacks import TrainContext
from netprism.train.checkpoint import (
    CheckpointError,
    checkpoint_file,
    latest_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    rng_from_flat,
    rng_to_flat,
    save_checkpoint,
)
from netprism.train.config import NOT_RUN_FIELDS

_MISSING = "<absent>"
_MAX_KEYS = 12  # model keys listed in a message; the rest are counted


class ResumeMismatchError(ValueError):
    """The newest checkpoint does not belong to the run being resumed (a ``ValueError``).

    Raised by :func:`netprism.train.fit` with ``resume=True`` when the checkpoint's model
    architecture, optimizer or run-defining config fields differ from the current run's, or its
    epoch is outside the run's epochs, and with ``resume="weights-only"`` when the model keys
    or shapes differ.  The message lists each differing field with the saved and current
    values and how to proceed.
    """


def save(ctx: TrainContext, scheduler: Any, callbacks: Sequence[Any]) -> None:
    """Write checkpoint ``ctx.epoch`` of the run: state tensors, config, history, fingerprint."""
    opt_tensors, opt_meta = optimizer_to_flat(ctx.optimizer)
    rng_tensors, rng_meta = rng_to_flat()
    tensors = {f"model.{k}": v for k, v in ctx.model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    for i, cb in enumerate(callbacks):
        if hasattr(cb, "state_dict"):
            tensors.update({f"callback{i}.{k}": v for k, v in cb.state_dict().items()})
    meta = {
        "config": ctx.config.to_dict(),
        "fingerprint": fingerprint(ctx.model, ctx.optimizer),
        "history": ctx.history,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(),
        "rng": rng_meta,
    }
    assert ctx.config.checkpoint_path is not None
    save_checkpoint(ctx.config.checkpoint_path, ctx.epoch, tensors, meta)


def maybe_resume(ctx: TrainContext, scheduler: Any, callbacks: Sequence[Any]) -> int | None:
    """Restore the newest valid checkpoint of ``ctx.config.checkpoint_dir`` into ``ctx``.

    Returns
    -------
    int or None
        ``resume=True``: the epoch restored (training continues after it), or ``None`` when
        the folder holds no checkpoint.  ``resume="weights-only"``: ``None`` (the run starts
        at epoch 0 from the loaded weights).

    Raises
    ------
    ResumeMismatchError
        The checkpoint belongs to another run (see the module docstring).
    CheckpointError
        Checkpoint files exist but none is valid, or ``resume="weights-only"`` finds none.
    """
    directory = ctx.config.checkpoint_path
    assert directory is not None
    found = latest_checkpoint(directory)
    weights_only = ctx.config.resume == "weights-only"
    if found is None:
        if weights_only:
            raise CheckpointError(
                f'resume="weights-only" needs a checkpoint to take the model weights from, '
                f"but {directory} holds none"
            )
        return None
    tensors, meta = found
    where = checkpoint_file(directory, meta["epoch"])
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    if weights_only:
        _refuse_weights(where, _model_differences(meta, ctx.model, exact=False))
        ctx.model.load_state_dict(model_state)
        return None
    _refuse_run(where, run_differences(meta, ctx))
    _check_epoch(where, meta["epoch"], ctx.config.epochs)
    ctx.model.load_state_dict(model_state)
    optimizer_from_flat(ctx.optimizer, tensors, meta["optimizer"])
    scheduler.load_state_dict(_scheduler_state(meta["scheduler"]))
    rng_from_flat(tensors, meta["rng"])
    for i, cb in enumerate(callbacks):
        prefix = f"callback{i}."
        if hasattr(cb, "load_state_dict"):
            cb.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
    ctx.history = list(meta["history"])
    ctx.epoch = int(meta["epoch"]) + 1
    return int(meta["epoch"])


# --- the run's identity ---------------------------------------------------------------------


def fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What identifies a run's model and optimizer, as JSON-able data.

    ``model``: class name and ``{key: [shape, dtype]}`` of its ``state_dict``.  ``optimizer``:
    class name and, per parameter group, its number of parameters and hyper-parameters; the
    current ``lr`` is left out (a schedule changes it; ``initial_lr`` and the config's ``lr``
    identify it).
    """
    return {"model": _model_print(model), "optimizer": _optimizer_print(optimizer)}


def _model_print(model: nn.Module) -> dict[str, Any]:
    state = {
        k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
        for k, v in model.state_dict().items()
    }
    return {"class": type(model).__qualname__, "state": state}


def _optimizer_print(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    groups = [
        {"n_params": len(g["params"]), **{k: v for k, v in g.items() if k not in ("params", "lr")}}
        for g in optimizer.param_groups
    ]
    return _jsonable({"class": type(optimizer).__qualname__, "groups": groups})


def run_differences(meta: dict[str, Any], ctx: TrainContext) -> list[str]:
    """``"field: saved X, now Y"`` for each way the checkpoint ``meta`` is not of this run."""
    return (
        _config_differences(meta, ctx.config.run_fields())
        + _model_differences(meta, ctx.model, exact=True)
        + _optimizer_differences(meta, ctx.optimizer)
    )


def _config_differences(meta: dict[str, Any], run_fields: dict[str, Any]) -> list[str]:
    found = meta.get("config")
    saved: dict[str, Any] = found if isinstance(found, dict) else {}
    now = _jsonable(run_fields)
    return [
        f"config.{k}: saved {saved.get(k, _MISSING)!r}, now {now.get(k, _MISSING)!r}"
        for k in sorted(set(saved) | set(now))
        if k not in NOT_RUN_FIELDS and saved.get(k, _MISSING) != now.get(k, _MISSING)
    ]


def _optimizer_differences(meta: dict[str, Any], optimizer: torch.optim.Optimizer) -> list[str]:
    saved = _saved_fingerprint(meta).get("optimizer", {})
    now = _optimizer_print(optimizer)
    if saved.get("class") != now["class"]:
        return [f"optimizer class: saved {saved.get('class')!r}, now {now['class']!r}"]
    if len(saved.get("groups", [])) != len(now["groups"]):
        return [
            f"optimizer param groups: saved {len(saved.get('groups', []))}, "
            f"now {len(now['groups'])}"
        ]
    # keys only one side has are flags a torch upgrade added, not another optimizer
    return [
        f"optimizer group {i} {k}: saved {old[k]!r}, now {new[k]!r}"
        for i, (old, new) in enumerate(zip(saved["groups"], now["groups"], strict=True))
        for k in sorted(set(old) & set(new))
        if old[k] != new[k]
    ]


def _model_differences(meta: dict[str, Any], model: nn.Module, *, exact: bool) -> list[str]:
    """Differences in model keys and shapes (``exact``: also class and dtypes)."""
    saved = _saved_fingerprint(meta).get("model", {})
    now = _model_print(model)
    diffs = []
    if exact and saved.get("class") != now["class"]:
        diffs.append(f"model class: saved {saved.get('class')!r}, now {now['class']!r}")
    old, new = saved.get("state", {}), now["state"]
    keys = []
    for k in sorted(set(old) | set(new)):
        if k not in new:
            keys.append(f"model key {k!r}: saved {_shape(old[k])}, absent now")
        elif k not in old:
            keys.append(f"model key {k!r}: absent in the checkpoint, now {_shape(new[k])}")
        elif old[k][0] != new[k][0] or (exact and old[k][1] != new[k][1]):
            keys.append(f"model key {k!r}: saved {_shape(old[k])}, now {_shape(new[k])}")
    if len(keys) > _MAX_KEYS:
        keys = [*keys[:_MAX_KEYS], f"... and {len(keys) - _MAX_KEYS} more model keys"]
    return diffs + keys


def _saved_fingerprint(meta: dict[str, Any]) -> dict[str, Any]:
    found = meta.get("fingerprint")
    return found if isinstance(found, dict) else {}


def _shape(entry: list[Any]) -> str:
    shape, dtype = entry
    return f"shape {tuple(shape)} {dtype}"


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(value, default=str))


def _refuse_run(where: Path, diffs: list[str]) -> None:
    if diffs:
        raise ResumeMismatchError(
            f"checkpoint {where} belongs to another run; it differs in:\n  "
            + "\n  ".join(diffs)
            + f"\nTo start afresh, delete {where.parent} (or pass another checkpoint_dir); to "
            'carry over only the model weights deliberately, pass resume="weights-only" '
            "(the run restarts at epoch 0 with a fresh optimizer)."
        )


def _refuse_weights(where: Path, diffs: list[str]) -> None:
    if diffs:
        raise ResumeMismatchError(
            f'resume="weights-only": the model weights in {where} do not fit this model '
            f"(another architecture); it differs in:\n  "
            + "\n  ".join(diffs)
            + f"\nTo start afresh, delete {where.parent} (or pass another checkpoint_dir)."
        )


def _check_epoch(where: Path, epoch: int, epochs: int) -> None:
    if not 0 <= epoch < epochs:
        raise ResumeMismatchError(
            f"checkpoint {where} records epoch {epoch}, expected one in [0, {epochs - 1}] for "
            f"a run of {epochs} epochs (epochs are counted from 0); delete {where.parent} (or "
            "pass another checkpoint_dir) to start afresh"
        )


def _scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """A scheduler state as saved, before JSON made MultiStepLR's int milestones strings
    (with string keys no milestone would ever be reached after a resume)."""
    milestones = state.get("milestones")
    if isinstance(milestones, dict):
        counts = collections.Counter({int(k): v for k, v in milestones.items()})
        state = {**state, "milestones": counts}
    return state
