"""IDX files (MNIST, Fashion-MNIST, KMNIST) read from the user's own folder.

The IDX format is LeCun, Cortes & Burges, "The MNIST database of handwritten digits" (1998,
http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code byte, a byte giving the
number of dimensions ``ndim``, then ``ndim`` big-endian int32 sizes and the big-endian
payload.  Fashion-MNIST is Xiao, Rasul & Vollgraf (2017, arXiv 1708.07747); KMNIST is
Clanuwat et al., "Deep Learning for Classical Japanese Literature" (2018, arXiv 1812.01718).
Files may be gzip-compressed (detected by the magic bytes ``1f 8b``, whatever the suffix).

Nothing here downloads or writes anything.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np
import torch

from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.readers.limits import check_budget, resolve_max_bytes
from netprism.data.registry import DATASETS

# dtype code byte -> big-endian numpy dtype of the payload.
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
GZIP_MAGIC = b"\x1f\x8b"

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")

# (images, labels) file stems per split; each is tried raw first, then with ".gz".
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path, max_bytes: int | None = None) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : path
        The file.  Compression is detected from its first two bytes, not its suffix.
    max_bytes : int, optional
        Budget for the decoded payload (see :mod:`netprism.data.readers.limits`; default
        ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB).  A header declaring more is refused before
        anything is inflated or allocated.

    Returns
    -------
    ndarray
        Shape ``(d_1, ..., d_ndim)`` from the header, native byte order, dtype one of
        uint8, int8, int16, int32, float32, float64.

    Raises
    ------
    ValueError
        Bad magic, unknown dtype code, ``ndim == 0``, a broken gzip stream, or a payload
        whose size is not exactly ``prod(dims) * itemsize`` (truncated or trailing bytes).
    DataBudgetError
        The declared payload is larger than ``max_bytes`` (a ``ValueError`` too).

    Examples
    --------
    >>> import tempfile, os
    >>> raw = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "a.idx").write_bytes(raw)
    ...     read_idx(Path(d, "a.idx")).tolist()
    [7, 8, 9]
    """
    return _read_idx(Path(path), resolve_max_bytes(max_bytes), 0)


def _read_idx(path: Path, budget: int, out_itemsize: int) -> np.ndarray:
    """:func:`read_idx` with the budget resolved; ``out_itemsize`` bytes per value that the
    caller will add (4 for a float32 copy) count against the budget too."""
    try:
        with _open_idx(path) as fh:
            return _parse_idx(fh, path, budget, out_itemsize)
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError) and str(path) in str(err):
            raise
        # gzip raises BadGzipFile (an OSError), EOFError or zlib.error on a broken stream
        raise ValueError(f"{path}: corrupt or truncated gzip stream: {err}") from err


def _open_idx(path: Path) -> BinaryIO:
    """The file opened for reading, through gzip when it starts with the gzip magic."""
    try:
        fh: BinaryIO = open(path, "rb")  # noqa: SIM115 (returned, closed by the caller)
    except OSError as err:
        raise FileNotFoundError(f"cannot read IDX file {path}: {err}") from err
    if fh.read(2) == GZIP_MAGIC:
        fh.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]  # owns (and closes) the file
    fh.seek(0)
    return fh


def _parse_idx(fh: BinaryIO, path: Path, budget: int, out_itemsize: int) -> np.ndarray:
    """Header first, then at most the declared payload + 1 byte: a header declaring a huge
    size in a small (or small gzipped) file, or more than ``budget`` bytes, fails without
    allocating or inflating it."""
    head = fh.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file: expected magic 00 00 <dtype> <ndim>, "
            f"got {head.hex(' ') or 'an empty file'}"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}, expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions, expected at least 1")
    header = 4 + 4 * ndim
    sizes = fh.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header: expected {header} bytes for {ndim} "
            f"dimensions, got {4 + len(sizes)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(sizes, dtype=">i4", count=ndim))
    if any(d < 0 for d in dims):
        raise ValueError(f"{path}: IDX header declares negative dimensions {dims}")
    if math.prod(d for d in dims if d) > 2**48:  # numpy cannot even shape an empty array so
        raise ValueError(f"{path}: IDX header declares impossibly large dimensions {dims}")
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if not _is_gzip(fh):
        actual = os.fstat(fh.fileno()).st_size - header
        if actual != expected:
            _size_error(path, dims, dtype, header, expected, actual)
    copy = {0: "", 4: " and their float32 copy", 8: " and their int64 copy"}[out_itemsize]
    what = f"IDX payload of dims {dims} of {dtype.name}{copy}"
    check_budget(math.prod(dims) * (dtype.itemsize + out_itemsize), budget, path, what)
    payload = _read_at_most(fh, expected + 1)
    if len(payload) != expected:  # gzip: > expected means "at least one byte too many"
        _size_error(path, dims, dtype, header, expected, len(payload), exact=False)
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    # native order; the (writable) bytearray is reused when it already is (uint8, int8)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _is_gzip(fh: BinaryIO) -> bool:
    return isinstance(fh, gzip.GzipFile)


def _read_at_most(fh: BinaryIO, limit: int) -> bytearray:
    """Up to ``limit`` bytes, decompressed in 256 KiB chunks into one growing buffer: nothing
    is allocated for bytes that are not there, and the payload is never held twice."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = fh.read(min(limit - len(buf), 1 << 18))
        if not chunk:
            break
        buf += chunk
    return buf


def _size_error(
    path: Path,
    dims: tuple[int, ...],
    dtype: np.dtype,
    header: int,
    expected: int,
    actual: int,
    *,
    exact: bool = True,
) -> NoReturn:
    kind = "truncated" if actual < expected else "has trailing bytes"
    more = "at least " if actual > expected and not exact else ""
    raise ValueError(
        f"{path}: IDX payload {kind}: dims {dims} of {dtype.name} need "
        f"{expected} bytes after the {header}-byte header, got {more}{actual}"
    )


def find_idx_files(
    split: str, data_dir: Path | None, folders: Sequence[str], name: str
) -> tuple[Path, Path]:
    """Locate the (images, labels) IDX files of ``split``.

    Search order: ``data_dir`` itself, then ``data_dir/<folder>`` for each of ``folders``
    in order; within a folder the raw file is preferred to its ``.gz``.  The first folder
    holding both files wins.

    Returns
    -------
    (images_path, labels_path)
    """
    stems = SPLIT_FILES[split]
    wanted = " and ".join(f"{s}[.gz]" for s in stems)
    if data_dir is None:
        raise ValueError(
            f"dataset {name!r} reads your own IDX files: pass data_dir= (CLI: "
            f"--data-dir DIR) naming a folder holding {wanted}, or DIR/"
            f"{folders[0]} with them"
        )
    roots = [data_dir, *(data_dir / f for f in folders)]
    for root in roots:
        found = [_first_file(root, stem) for stem in stems]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    looked = ", ".join(str(r) for r in roots)
    raise FileNotFoundError(
        f"dataset {name!r} ({split}): could not find {wanted}; looked in "
        f"{looked}. Put the IDX files in one of these folders and pass "
        f"the folder with --data-dir (data_dir= in Python)."
    )


def _first_file(root: Path, stem: str) -> Path | None:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_idx_pair(
    images_path: Path, labels_path: Path, num_classes: int, max_bytes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, H, W)`` float32 in [0, 1] and labels ``(N,)`` int64, validated.

    ``max_bytes`` (default ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB) bounds each file's payload
    plus the float32 (images) or int64 (labels) tensor made from it, checked on the headers.
    """
    budget = resolve_max_bytes(max_bytes)
    images = _read_idx(images_path, budget, 4)
    labels = _read_idx(labels_path, budget, 8)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, H, W), got "
            f"{images.dtype.name} of shape {images.shape}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{labels_path}: expected integer labels of shape (N,), got "
            f"{labels.dtype.name} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; they must match"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{labels_path}: label {int(labels[i])} at index {i} outside [0, {num_classes})"
        )
    x = torch.from_numpy(images).unsqueeze(1).to(torch.float32).div_(255.0)  # (N, 1, H, W)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def _idx_dataset(
    name: str,
    classes: tuple[str, ...],
    folders: Sequence[str],
    split: str,
    data_dir: Path | None,
    kwargs: dict[str, Any],
) -> TensorDataset:
    max_bytes = kwargs.pop("max_bytes", None)
    if kwargs:
        raise TypeError(f"dataset {name!r} got unexpected option(s) {sorted(kwargs)}")
    budget = resolve_max_bytes(max_bytes)
    images_path, labels_path = find_idx_files(split, data_dir, folders, name)
    x, y = load_idx_pair(images_path, labels_path, len(classes), budget)
    info = DatasetInfo(name, classes, tuple(x.shape[1:]), f"IDX files {images_path}, {labels_path}")
    return TensorDataset(x, y, info)


@DATASETS.register("mnist", needs_data_dir=True)
def mnist(
    *, split: str = "train", data_dir: Path | None = None, seed: int = 0, **kwargs: Any
) -> TensorDataset:
    """MNIST from the user's IDX files: ``x`` (N, 1, 28, 28) in [0, 1], ``y`` (N,) in [0, 10).

    Files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``) are searched in ``data_dir``, then
    ``data_dir/MNIST/raw`` (torchvision's layout), then ``data_dir/mnist``.  ``H, W`` come
    from the file.  ``seed`` is unused (the split is the files').  ``max_bytes=N`` raises the
    memory budget (default ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB) that each file's declared
    payload plus its tensor must fit; the same option is taken by ``fashion_mnist`` and
    ``kmnist``.
    """
    return _idx_dataset("mnist", DIGIT_CLASSES, ("MNIST/raw", "mnist"), split, data_dir, kwargs)


@DATASETS.register("fashion_mnist", needs_data_dir=True)
def fashion_mnist(
    *, split: str = "train", data_dir: Path | None = None, seed: int = 0, **kwargs: Any
) -> TensorDataset:
    """Fashion-MNIST from the user's IDX files (same names and shapes as :func:`mnist`).

    Searched in ``data_dir``, then ``data_dir/FashionMNIST/raw``, then
    ``data_dir/fashion_mnist``.
    """
    return _idx_dataset(
        "fashion_mnist",
        FASHION_CLASSES,
        ("FashionMNIST/raw", "fashion_mnist"),
        split,
        data_dir,
        kwargs,
    )


@DATASETS.register("kmnist", needs_data_dir=True)
def kmnist(
    *, split: str = "train", data_dir: Path | None = None, seed: int = 0, **kwargs: Any
) -> TensorDataset:
    """KMNIST (Kuzushiji-MNIST) from the user's IDX files (same names as :func:`mnist`).

    Searched in ``data_dir``, then ``data_dir/KMNIST/raw``, then ``data_dir/kmnist``.
    Classes are the romanized hiragana o, ki, su, tsu, na, ha, ma, ya, re, wo.
    """
    return _idx_dataset("kmnist", KMNIST_CLASSES, ("KMNIST/raw", "kmnist"), split, data_dir, kwargs)
