"""Checkpoints: tensors as safetensors, everything else as JSON, both written atomically.

Layout in ``checkpoint_dir``: ``epoch_0003.safetensors`` (model weights under ``model.``,
optimizer tensors under ``optim.``, RNG state, callback tensors) and ``epoch_0003.json``
(config, epoch, history, optimizer hyper-parameters, the safetensors file's SHA-256 under
``sha256`` and, under ``meta_sha256``, the SHA-256 of the JSON's own canonical form without that
key).  The JSON is written last and is the commit marker: a checkpoint counts only when its
JSON exists and both hashes match, so a kill during a save never yields a half-written
checkpoint and an edited JSON (a changed ``lr``, a rewritten history) is not trusted.

A corrupted, truncated or edited checkpoint (hash mismatch, bad JSON, unparsable tensors, an
``epoch`` that is not the one in its file name) is skipped with a warning for the previous one;
if checkpoint files exist but none is valid, :func:`latest_checkpoint` raises
:class:`CheckpointError` rather than silently starting afresh.  Checkpoints written before
``meta_sha256`` existed count as invalid too (their JSON cannot be verified): delete them to
start afresh.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from netprism.io import atomic_write, atomic_write_text, load_json

_NAME = re.compile(r"^epoch_(\d{4,})\.json$")
KEEP_LAST = 2


class CheckpointError(ValueError):
    """Checkpoint files exist but none of them is valid, or a needed one is missing
    (also a ``ValueError``)."""


def checkpoint_file(directory: Path, epoch: int) -> Path:
    """The JSON (commit marker) of checkpoint ``epoch`` in ``directory``."""
    return directory / f"epoch_{epoch:04d}.json"


def save_checkpoint(
    directory: Path, epoch: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write checkpoint ``epoch`` (tensors + JSON meta) and prune all but the newest two.

    Checkpoints numbered above ``epoch`` are removed once this one is committed: they belong
    to an abandoned run (one restarted at epoch 0 with ``resume="weights-only"``), and left in
    place they would pass for the newest checkpoint of this one.

    Raises
    ------
    OSError
        The folder is not writable or the disk is full; the message names the checkpoint and
        says that the previous checkpoints were left intact (nothing is pruned on failure).
    """
    stem = checkpoint_file(directory, epoch).with_suffix("")
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(stem.with_suffix(".safetensors"), lambda tmp: save_file(flat, str(tmp)))
        meta = {**meta, "epoch": epoch, "sha256": _sha256(stem.with_suffix(".safetensors"))}
        meta["meta_sha256"] = meta_digest(meta)
        atomic_write_text(stem.with_suffix(".json"), json.dumps(meta, indent=1))
    except OSError as e:
        raise OSError(
            e.errno,
            f"cannot save checkpoint {stem.name} in {directory}: {e.strerror or e}; "
            f"earlier checkpoints there are intact",
        ) from e
    _drop_later(directory, epoch)
    _prune(directory)
    return stem.with_suffix(".json")


def latest_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Load the newest valid checkpoint in ``directory`` or return ``None`` if there is none.

    A checkpoint whose JSON is unreadable, fails its ``meta_sha256`` check (edited, or
    written before that field existed) or names another epoch than its file, or whose tensors
    are missing, fail the SHA-256 check or do not parse as safetensors, is skipped with a
    ``RuntimeWarning`` naming the file and the problem, and the previous one is tried (a kill
    can only ever leave the newest one incomplete, and its predecessor is still on disk).
    Nothing here unpickles: tensors are read with safetensors and the rest is JSON.

    Raises
    ------
    CheckpointError
        Checkpoint files exist but every one is invalid; starting afresh silently would
        overwrite them, so the message lists each file and its problem instead.
    """
    if not directory.is_dir():
        return None
    problems: list[str] = []
    for json_path in reversed(_checkpoints(directory)):
        try:
            return _load_one(json_path)
        except ValueError as err:
            problems.append(str(err))
            warnings.warn(f"skipping invalid checkpoint: {err}", RuntimeWarning, stacklevel=2)
    if problems:
        raise CheckpointError(
            f"no valid checkpoint in {directory}: " + "; ".join(problems) + ". Delete these "
            "files (or pass another checkpoint_dir) to start afresh."
        )
    return None


def _load_one(json_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One checkpoint, or ``ValueError`` naming the file and what is wrong with it."""
    tensor_path = json_path.with_suffix(".safetensors")
    try:
        meta = load_json(json_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{json_path}: unreadable JSON ({err})") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise ValueError(f"{json_path}: expected a JSON object with a 'sha256' string")
    if not isinstance(meta.get("epoch"), int) or isinstance(meta["epoch"], bool):
        raise ValueError(f"{json_path}: expected an integer 'epoch', got {meta.get('epoch')!r}")
    if "meta_sha256" in meta:  # an edited JSON is reported as such, before its tensors
        _check_meta_digest(json_path, meta)
    named = _number(json_path)
    if meta["epoch"] != named:
        raise ValueError(
            f"{json_path}: records epoch {meta['epoch']}, expected {named} as in its file name "
            f"(renamed checkpoint files?)"
        )
    try:
        digest = _sha256(tensor_path)
    except OSError as err:
        raise ValueError(f"{tensor_path}: cannot read the checkpoint tensors ({err})") from err
    if digest != meta["sha256"]:
        raise ValueError(
            f"{tensor_path}: SHA-256 {digest[:12]}... does not match {meta['sha256'][:12]!r}... "
            f"recorded in {json_path} (truncated or corrupted)"
        )
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{tensor_path}: not a valid safetensors file ({err})") from err
    if "meta_sha256" not in meta:
        _check_meta_digest(json_path, meta)  # refuses: a JSON that cannot be verified
    return tensors, meta


def meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of ``meta`` without its ``meta_sha256`` key, as canonical JSON.

    The meta is first taken through JSON once, so the digest of what is written equals the
    digest of what is read back (int dict keys become strings, tuples lists), then dumped with
    sorted keys and no whitespace.
    """
    body = json.loads(json.dumps({k: v for k, v in meta.items() if k != "meta_sha256"}))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _check_meta_digest(json_path: Path, meta: dict[str, Any]) -> None:
    recorded = meta.get("meta_sha256")
    if not isinstance(recorded, str):
        raise ValueError(
            f"{json_path}: no 'meta_sha256' string, so the JSON cannot be verified (written by "
            f"an older netprism, or edited); delete the checkpoint to start afresh"
        )
    digest = meta_digest(meta)
    if digest != recorded:
        raise ValueError(
            f"{json_path}: JSON content SHA-256 {digest[:12]}... does not match its "
            f"'meta_sha256' {recorded[:12]!r}... (the JSON was edited or corrupted)"
        )


def _checkpoints(directory: Path) -> list[Path]:
    """Checkpoint JSON files, oldest epoch first (by number: epoch_10000 after epoch_9999)."""
    return sorted((p for p in directory.iterdir() if _NAME.match(p.name)), key=_number)


def _number(json_path: Path) -> int:
    """The epoch in a checkpoint's file name (``epoch_0003.json`` -> 3)."""
    match = _NAME.match(json_path.name)
    assert match is not None, json_path
    return int(match.group(1))


def _drop_later(directory: Path, epoch: int) -> None:
    """Remove checkpoints numbered above ``epoch``: an abandoned run's (see save_checkpoint)."""
    for json_path in _checkpoints(directory):
        if _number(json_path) > epoch:
            json_path.unlink(missing_ok=True)  # the commit marker first
            json_path.with_suffix(".safetensors").unlink(missing_ok=True)


def _prune(directory: Path) -> None:
    # Temporary files left by a process killed mid-save are never valid checkpoints.
    for stale in directory.glob(".epoch_*.tmp"):
        stale.unlink(missing_ok=True)
    for json_path in _checkpoints(directory)[:-KEEP_LAST]:
        json_path.unlink(missing_ok=True)
        json_path.with_suffix(".safetensors").unlink(missing_ok=True)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB blocks (``OSError`` if unreadable)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_sha256 = sha256_file


def write_safetensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Write ``tensors`` (detached, moved to the CPU, made contiguous) to ``path`` as
    safetensors, atomically: a failure leaves any previous ``path`` untouched.  Returns
    ``path``.  Nothing is pickled, so reading it back never runs code."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata))


# --- optimizer and RNG state <-> (tensors, JSON) --------------------------------------------


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_to_flat`, loaded into ``opt``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, scalars in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(scalars)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_to_flat() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Global RNG states: torch's as tensors, Python's and NumPy's as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, np.asarray(keys).tolist(), pos, has_gauss, cached],
    }
    return tensors, meta


def rng_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_to_flat` saved."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
