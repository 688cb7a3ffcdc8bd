"""CIFAR-10 / CIFAR-100 read from the user's own folder, with a restricted unpickler.

The datasets are Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009,
https://www.cs.toronto.edu/~kriz/cifar.html).  Two on-disk formats are read:

- the python version (``cifar-10-batches-py``, ``cifar-100-python``): Python 2 pickles
  (protocol 2) of dicts with bytes keys (``b"data"`` of shape (N, 3072) uint8, ``b"labels"``
  or ``b"fine_labels"``/``b"coarse_labels"``).  They are loaded with ``encoding="bytes"`` by
  :class:`~netprism.data.readers.safe_pickle.RestrictedUnpickler`, which admits only checked
  stand-ins for the globals numpy needs to rebuild an array (a plain dtype, and data bytes that
  match the shape exactly) and refuses every other one, so a crafted file can neither run code
  nor conjure uninitialised or zero-stride arrays;
- the binary version (``cifar-10-batches-bin``, ``cifar-100-binary``): fixed-size records
  of label byte(s) followed by 3072 pixel bytes.

Memory is bounded by ``max_bytes`` (:mod:`netprism.data.readers.limits`): the batch files and
the float32 images made from them are checked before they are read or allocated.  Nothing here
downloads or writes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.readers.limits import FLOAT32, check_budget, resolve_max_bytes
from netprism.data.readers.safe_pickle import (
    RestrictedUnpickler,
    UnsafePickleError,
    load_pickle,
)
from netprism.data.registry import DATASETS

__all__ = [
    "RestrictedUnpickler",
    "UnsafePickleError",
    "cifar10",
    "cifar100",
    "load_pickle",
    "read_binary_batch",
    "read_pickle_batch",
]

PIXELS = 3 * 32 * 32  # one image: 1024 R, then 1024 G, then 1024 B values, row-major 32x32
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
LABEL_MODES = ("fine", "coarse")


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise ValueError(f"{path}: missing key {key!r}; found keys {sorted(batch)}")
    return batch[key]


def _labels(values: Any, n: int, num_classes: int, key: str, path: Path) -> np.ndarray:
    labels = np.asarray(values)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: {key!r} must be {n} integers (one per image), got "
            f"{labels.dtype.name} of shape {labels.shape}"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: {key!r} value {int(labels[i])} at index {i} outside [0, {num_classes})"
        )
    return labels.astype(np.int64)


def read_pickle_batch(
    path: Path, label_keys: dict[str, int], max_bytes: int | None = None
) -> dict[str, np.ndarray]:
    """One python-format batch: ``"data"`` (N, 3072) uint8 and each of ``label_keys`` (N,).

    ``label_keys`` maps a key (``"labels"``, ``"fine_labels"``, ``"coarse_labels"``) to its
    number of classes; ``max_bytes`` (default ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB) bounds
    the file's size.
    """
    batch = load_pickle(path, max_bytes)
    data = _field(batch, "data", path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != PIXELS
    ):
        got = (
            f"{data.dtype.name} of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}), got {got}")
    out = {"data": data}
    for key, k in label_keys.items():
        out[key] = _labels(_field(batch, key, path), len(data), k, key, path)
    return out


def read_binary_batch(
    path: Path, label_keys: dict[str, int], max_bytes: int | None = None
) -> dict[str, np.ndarray]:
    """One binary-format file: records of ``len(label_keys)`` label bytes + 3072 pixels.

    ``max_bytes`` (default ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB) bounds the file's size.
    """
    check_budget(path.stat().st_size, resolve_max_bytes(max_bytes), path, "the batch file")
    raw = path.read_bytes()
    record = len(label_keys) + PIXELS
    if not raw or len(raw) % record:
        raise ValueError(
            f"{path}: size {len(raw)} bytes is not a positive multiple of the "
            f"{record}-byte CIFAR record ({len(label_keys)} label byte(s) + "
            f"{PIXELS} pixels)"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)  # (N, labels + 3072)
    out = {"data": rows[:, len(label_keys) :].copy()}
    for j, (key, k) in enumerate(label_keys.items()):
        out[key] = _labels(rows[:, j], len(rows), k, key, path)
    return out


def _names(values: Any, count: int, what: str, path: Path) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise ValueError(f"{path}: {what} must be a list of {count} names, got {values!r:.80}")
    return tuple(v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values)


def _text_names(path: Path, count: int) -> tuple[str, ...]:
    check_budget(path.stat().st_size, resolve_max_bytes(), path, "the class names file")
    lines = [line.strip() for line in path.read_text(encoding="latin1").splitlines()]
    return _names([line for line in lines if line], count, "class names", path)


# Per dataset: its (python, binary) folder names and, per format, the file names of each
# split and of the class-name ("meta") files.
LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folders": ("cifar-10-batches-py", "cifar-10-batches-bin"),
        "python": {
            "train": [f"data_batch_{i}" for i in range(1, 6)],
            "test": ["test_batch"],
            "meta": ["batches.meta"],
        },
        "binary": {
            "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
            "test": ["test_batch.bin"],
            "meta": ["batches.meta.txt"],
        },
    },
    "cifar100": {
        "folders": ("cifar-100-python", "cifar-100-binary"),
        "python": {"train": ["train"], "test": ["test"], "meta": ["meta"]},
        "binary": {
            "train": ["train.bin"],
            "test": ["test.bin"],
            "meta": ["coarse_label_names.txt", "fine_label_names.txt"],
        },
    },
}


def find_cifar_files(
    name: str, split: str, data_dir: Path | None
) -> tuple[str, list[Path], list[Path]]:
    """Locate ``(format, batch files, meta files)`` of ``split``.

    Search order: ``data_dir/<python folder>``, ``data_dir/<binary folder>``, then
    ``data_dir`` itself (python files, then binary files).  A folder is used when all batch
    files of the split are in it; a missing meta file is reported when it is read.
    """
    layout = LAYOUTS[name]
    py_dir, bin_dir = layout["folders"]
    if data_dir is None:
        raise ValueError(
            f"dataset {name!r} reads your own CIFAR files: pass data_dir= (CLI: "
            f"--data-dir DIR) naming the folder that holds {py_dir}/ (python "
            f"version) or {bin_dir}/ (binary version)"
        )
    tries = [
        (data_dir / py_dir, "python"),
        (data_dir / bin_dir, "binary"),
        (data_dir, "python"),
        (data_dir, "binary"),
    ]
    for root, fmt in tries:
        files = [root / f for f in layout[fmt][split]]
        if all(f.is_file() for f in files):
            return fmt, files, [root / f for f in layout[fmt]["meta"]]
    looked = "; ".join(f"{root} ({', '.join(layout[fmt][split])})" for root, fmt in tries)
    raise FileNotFoundError(
        f"dataset {name!r} ({split}): CIFAR files not found; looked for "
        f"{looked}. Extract the CIFAR archive and pass the folder holding "
        f"{py_dir}/ with --data-dir (data_dir= in Python)."
    )


def _read_batches(
    fmt: str, files: list[Path], label_keys: dict[str, int], budget: int
) -> dict[str, np.ndarray]:
    """The split's batches concatenated, within ``budget``: the files' total size is checked
    before any is read (binary: with the float32 images they hold); the images' uint8 and
    float32 copies after each pickle is read, before the next one or the float32 copy."""
    sizes = [f.stat().st_size for f in files]
    where = files[0].parent
    if fmt == "binary":
        images = sum(size // (len(label_keys) + PIXELS) for size in sizes)
        need = sum(sizes) + images * PIXELS * (1 + FLOAT32)
        check_budget(need, budget, where, f"{len(files)} batch file(s) and their float32 images")
    else:
        check_budget(sum(sizes), budget, where, f"{len(files)} pickle file(s)")
    batches, images = [], 0
    for f in files:
        if fmt == "binary":
            batches.append(read_binary_batch(f, label_keys, budget))
            continue
        batches.append(read_pickle_batch(f, label_keys, budget))
        images += len(batches[-1]["data"])
        what = f"{images} CIFAR images (uint8 and float32) read up to this file"
        check_budget(images * PIXELS * (2 + FLOAT32), budget, f, what)
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def _to_images(data: np.ndarray) -> torch.Tensor:
    """(N, 3072) uint8 -> (N, 3, 32, 32) float32 in [0, 1]."""
    return torch.from_numpy(data).reshape(-1, 3, 32, 32).to(torch.float32).div_(255.0)


def _cifar10_classes(fmt: str, meta: Path) -> tuple[str, ...]:
    if not meta.is_file():
        return CIFAR10_CLASSES  # the names are fixed; the meta file only repeats them
    if fmt == "binary":
        return _text_names(meta, 10)
    return _names(_field(load_pickle(meta), "label_names", meta), 10, "'label_names'", meta)


def _cifar100_classes(fmt: str, metas: list[Path]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fine names, coarse names) from the meta file(s)."""
    for meta_path in metas:
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"CIFAR-100 class names file {meta_path} not found; it comes "
                f"with the CIFAR-100 archive"
            )
    if fmt == "binary":
        return _text_names(metas[1], 100), _text_names(metas[0], 20)
    path = metas[0]
    meta = load_pickle(path)
    fine = _names(_field(meta, "fine_label_names", path), 100, "'fine_label_names'", path)
    coarse = _names(_field(meta, "coarse_label_names", path), 20, "'coarse_label_names'", path)
    return fine, coarse


def _reject(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"dataset {name!r} got unexpected option(s) {sorted(kwargs)}")


@DATASETS.register("cifar10", needs_data_dir=True)
def cifar10(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    max_bytes: int | None = None,
    **kwargs: Any,
) -> TensorDataset:
    """CIFAR-10 from the user's files: ``x`` (N, 3, 32, 32) float32 in [0, 1], ``y`` (N,).

    Reads ``data_batch_1`` .. ``data_batch_5`` (train) or ``test_batch`` (test) and
    ``batches.meta`` from ``data_dir/cifar-10-batches-py``; else the ``.bin`` files and
    ``batches.meta.txt`` from ``data_dir/cifar-10-batches-bin``; else either from
    ``data_dir`` itself.  ``seed`` is unused.  ``max_bytes`` is the memory budget (default
    ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB; the full train split needs about 0.9 GiB).
    """
    _reject("cifar10", kwargs)
    budget = resolve_max_bytes(max_bytes)
    fmt, files, metas = find_cifar_files("cifar10", split, data_dir)
    arrays = _read_batches(fmt, files, {"labels": 10}, budget)
    classes = _cifar10_classes(fmt, metas[0])
    x = _to_images(arrays["data"])
    info = DatasetInfo("cifar10", classes, (3, 32, 32), f"CIFAR-10 {fmt} files {files[0].parent}")
    return TensorDataset(x, torch.from_numpy(arrays["labels"]), info)


@DATASETS.register("cifar100", needs_data_dir=True)
def cifar100(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    label_mode: str = "fine",
    max_bytes: int | None = None,
    **kwargs: Any,
) -> TensorDataset:
    """CIFAR-100 from the user's files: ``x`` (N, 3, 32, 32) float32 in [0, 1], ``y`` (N,).

    Reads ``train``/``test`` and ``meta`` from ``data_dir/cifar-100-python``; else
    ``train.bin``/``test.bin`` and ``{fine,coarse}_label_names.txt`` from
    ``data_dir/cifar-100-binary``; else either from ``data_dir`` itself.

    Parameters
    ----------
    label_mode : {"fine", "coarse"}
        ``y`` holds the 100 fine labels (default) or the 20 coarse superclasses.  Both are
        kept: ``extras["coarse_y"]`` and ``extras["fine_y"]`` (N,), and
        ``info.extra["coarse_classes"]`` / ``info.extra["fine_classes"]``.
    max_bytes : int, optional
        Memory budget (default ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB), checked before the
        files are read and before the float32 images are made.
    """
    _reject("cifar100", kwargs)
    budget = resolve_max_bytes(max_bytes)
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    fmt, files, metas = find_cifar_files("cifar100", split, data_dir)
    keys = {"coarse_labels": 20, "fine_labels": 100}  # binary record order: coarse, fine
    arrays = _read_batches(fmt, files, keys, budget)
    fine_names, coarse_names = _cifar100_classes(fmt, metas)
    coarse = torch.from_numpy(arrays["coarse_labels"])
    fine = torch.from_numpy(arrays["fine_labels"])
    y, classes = (fine, fine_names) if label_mode == "fine" else (coarse, coarse_names)
    info = DatasetInfo(
        "cifar100",
        classes,
        (3, 32, 32),
        f"CIFAR-100 {fmt} files {files[0].parent}, label_mode={label_mode}",
        {"coarse_classes": coarse_names, "fine_classes": fine_names, "label_mode": label_mode},
    )
    return TensorDataset(_to_images(arrays["data"]), y, info, {"coarse_y": coarse, "fine_y": fine})
