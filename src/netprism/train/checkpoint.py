"""Checkpoints: tensors as safetensors, everything else as JSON, both written atomically.

Layout in ``checkpoint_dir``: ``epoch_0003.safetensors`` (model weights under ``model.``,
optimizer tensors under ``optim.``, RNG state, callback tensors) and ``epoch_0003.json``
(config, epoch, history, optimizer hyper-parameters, the safetensors file's SHA-256).  The JSON
is written last and is the commit marker: a checkpoint counts only when its JSON exists and
the hash matches, so a kill during a save never yields a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from netprism.io import atomic_write, atomic_write_text

_NAME = re.compile(r"^epoch_(\d{4,})\.json$")
KEEP_LAST = 2


def save_checkpoint(
    directory: Path, epoch: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write checkpoint ``epoch`` (tensors + JSON meta) and prune all but the newest two."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"epoch_{epoch:04d}"
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(stem.with_suffix(".safetensors"), lambda tmp: save_file(flat, str(tmp)))
    meta = {**meta, "epoch": epoch, "sha256": _sha256(stem.with_suffix(".safetensors"))}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(meta, indent=1))
    _prune(directory)
    return stem.with_suffix(".json")


def latest_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Load the newest valid checkpoint in ``directory`` or return ``None`` if there is none.

    Checkpoints whose JSON is unreadable or whose tensors fail the hash check are skipped.
    """
    if not directory.is_dir():
        return None
    for json_path in sorted(_checkpoints(directory), reverse=True):
        try:
            meta = json.loads(json_path.read_text())
            tensor_path = json_path.with_suffix(".safetensors")
            if _sha256(tensor_path) != meta.get("sha256"):
                continue
            return load_file(str(tensor_path)), meta
        except (OSError, ValueError, json.JSONDecodeError):
            continue
    return None


def _checkpoints(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if _NAME.match(p.name)]


def _prune(directory: Path) -> None:
    # Temporary files left by a process killed mid-save are never valid checkpoints.
    for stale in directory.glob(".epoch_*.tmp"):
        stale.unlink(missing_ok=True)
    for json_path in sorted(_checkpoints(directory))[:-KEEP_LAST]:
        json_path.unlink(missing_ok=True)
        json_path.with_suffix(".safetensors").unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
