"""A byte-level text corpus from the running Python's own standard-library sources.

Data for the tiny language model of "Apple Intelligence Foundation Language Models: Tech Report
2025" (arXiv 2507.13575), reproduced at CPU scale without downloads: every Python install ships
its standard library, so the ``.py`` files under ``sysconfig.get_paths()["stdlib"]`` are a text
corpus that is always there.

- Files are listed in sorted order, skipping test directories, ``site-packages`` and caches.
- Each file goes to train / validation / test by a hash of its relative path, so the split is
  the same on every run and a file never straddles two splits.
- One whole package (``email`` by default) is held out of all three splits: it is the new domain
  for adapter fine-tuning.
- Each split is its files' bytes in order, each file followed by ``EOS`` (byte 0, which does not
  occur in source text), truncated to ``max_bytes``.
- ``sha256`` fingerprints the file lists and the train bytes; the corpus changes with the Python
  version, so compare ratios and deltas across machines, not absolute numbers.

The metric is bits per byte: the mean cross-entropy in nats divided by ``ln 2``.
"""

from __future__ import annotations

import hashlib
import math
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test", "heldout")
EOS = 0  # separates files; never occurs in the (text) sources
EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})


@dataclass(frozen=True)
class ByteCorpus:
    """The four splits as ``uint8`` arrays, with their file lists and a fingerprint.

    Attributes
    ----------
    train, val, test, heldout : ndarray (N_split,) uint8
        Concatenated file bytes (each file followed by ``EOS``), at most ``max_bytes`` each.
    files : dict of str to tuple of str
        Relative paths (``/``-separated, sorted) assigned to each split, before truncation.
    sha256 : str
        Hex SHA-256 of every split's file list and the train bytes.
    root : str
        The directory the sources were read from.
    heldout_package : str
        The held-out package, as a relative directory (``"email"``, ``"xml/etree"``).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    heldout: np.ndarray
    files: dict[str, tuple[str, ...]] = field(repr=False)
    sha256: str
    root: str
    heldout_package: str

    def split(self, name: str) -> np.ndarray:
        """The bytes of split ``name`` (one of ``SPLITS``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, object]:
        """Sizes and fingerprint (no bytes), for a Result or a JSON config."""
        return {
            "root": self.root,
            "heldout_package": self.heldout_package,
            "sha256": self.sha256,
            **{f"{s}_bytes": int(self.split(s).size) for s in SPLITS},
            **{f"{s}_files": len(self.files[s]) for s in SPLITS},
        }


def stdlib_corpus(
    *,
    heldout_package: str = "email",
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    max_bytes: int | None = None,
    root: str | Path | None = None,
) -> ByteCorpus:
    """Build the byte corpus from the standard library's ``.py`` files (or those under ``root``).

    Parameters
    ----------
    heldout_package : str
        A package directory under ``root`` (dotted or ``/``-separated: ``"xml.etree"``) held out
        of train/val/test for adapter fine-tuning.
    val_fraction, test_fraction : float
        Expected fractions of the remaining files in the validation and test splits.
    max_bytes : int, optional
        Cap on each split's bytes (files are read in sorted order until the cap is reached),
        so tests stay tiny.  ``None`` reads everything (about 13 MB on Python 3.11).
    root : str or Path, optional
        Source directory; default ``sysconfig.get_paths()["stdlib"]``.

    Returns
    -------
    ByteCorpus

    Raises
    ------
    ValueError
        On a bad fraction or cap, a missing held-out package, or an empty split.

    Examples
    --------
    >>> c = stdlib_corpus(max_bytes=4096)
    >>> c.train.dtype, c.train.size, len(c.sha256)
    (dtype('uint8'), 4096, 64)
    >>> all(p.startswith("email/") for p in c.files["heldout"])
    True
    """
    _check_args(val_fraction, test_fraction, max_bytes)
    base = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    if not base.is_dir():
        raise ValueError(f"corpus root {str(base)!r} is not a directory")
    package = heldout_package.replace(".", "/").strip("/")
    if not package or not (base / package).is_dir():
        raise ValueError(
            f"heldout_package {heldout_package!r} is not a package directory under {str(base)!r}"
        )
    files = split_files(_list_sources(base), package, val_fraction, test_fraction)
    for name in SPLITS:
        if not files[name]:
            raise ValueError(
                f"split {name!r} has no files under {str(base)!r} (val_fraction="
                f"{val_fraction}, test_fraction={test_fraction}, heldout={package!r})"
            )
    arrays = {name: _read_split(base, files[name], max_bytes) for name in SPLITS}
    return ByteCorpus(
        **arrays,
        files=files,
        sha256=corpus_sha256(files, arrays["train"]),
        root=str(base),
        heldout_package=package,
    )


def _check_args(val_fraction: float, test_fraction: float, max_bytes: int | None) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(f, (int, float)) or not 0 < f < 1:
            raise ValueError(f"{name} must be a float in (0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )
    if max_bytes is not None and (
        not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1
    ):
        raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")


def _list_sources(base: Path) -> list[str]:
    """Sorted ``/``-separated relative paths of the ``.py`` files under ``base``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]  # prune, never descend
        rel = Path(dirpath).relative_to(base)
        out += [(rel / f).as_posix() for f in filenames if f.endswith(".py")]
    return sorted(out)


def split_files(
    paths: list[str], heldout_package: str, val_fraction: float, test_fraction: float
) -> dict[str, tuple[str, ...]]:
    """Assign each relative path to a split by its hash (the held-out package first).

    >>> split_files(["a.py", "pkg/b.py"], "pkg", 0.05, 0.05)["heldout"]
    ('pkg/b.py',)
    """
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    for path in sorted(paths):
        if path.startswith(heldout_package + "/"):
            out["heldout"].append(path)
            continue
        # uniform in [0, 1) from the path alone: stable across runs, machines and Pythons
        u = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") / 2**64
        name = (
            "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"
        )
        out[name].append(path)
    return {name: tuple(v) for name, v in out.items()}


def _read_split(base: Path, files: tuple[str, ...], max_bytes: int | None) -> np.ndarray:
    chunks: list[bytes] = []
    size = 0
    for path in files:
        if max_bytes is not None and size >= max_bytes:
            break
        data = (base / path).read_bytes() + bytes([EOS])
        chunks.append(data)
        size += len(data)
    joined = b"".join(chunks)[:max_bytes]
    return np.frombuffer(joined, dtype=np.uint8).copy()


def corpus_sha256(files: dict[str, tuple[str, ...]], train: np.ndarray) -> str:
    """Hex SHA-256 of each split's file list (in ``SPLITS`` order) followed by the train bytes."""
    h = hashlib.sha256()
    for name in SPLITS:
        h.update(f"{name}:{chr(10).join(files.get(name, ()))}\n".encode())
    h.update(np.ascontiguousarray(train, dtype=np.uint8).tobytes())
    return h.hexdigest()


def checked_windows(data: np.ndarray, context: int) -> np.ndarray:
    """``data`` as a 1-D ``uint8`` array holding at least one window of ``context + 1`` bytes;
    a clear ``ValueError`` otherwise."""
    data = np.asarray(data)
    if data.ndim != 1 or data.dtype != np.uint8:
        raise ValueError(
            f"data must be a 1-D uint8 array, got shape {data.shape} dtype {data.dtype}"
        )
    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        raise ValueError(f"context must be a positive int, got {context!r}")
    if data.size < context + 1:
        raise ValueError(
            f"data has {data.size} bytes; a window of context {context} needs {context + 1}"
        )
    return data


class BatchSampler:
    """Seeded random windows of a byte array: each batch is ``(B, T + 1)`` ``uint8``.

    Inputs are ``batch[:, :-1]`` and next-byte targets ``batch[:, 1:]``.  The same seed gives
    the same sequence of batches.

    Parameters
    ----------
    data : ndarray (N,) uint8
    batch_size : int
        ``B``.
    context : int
        ``T``; needs ``N >= T + 1``.
    seed : int

    Examples
    --------
    >>> s = BatchSampler(np.arange(100, dtype=np.uint8), batch_size=2, context=8, seed=0)
    >>> b = s.sample()
    >>> b.shape, b.dtype, bool((b[:, 1:] - b[:, :-1] == 1).all())
    (torch.Size([2, 9]), torch.uint8, True)
    """

    def __init__(self, data: np.ndarray, *, batch_size: int, context: int, seed: int) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        data = checked_windows(data, context)
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.data = torch.from_numpy(data)
        self.batch_size = batch_size
        self.context = context
        self.generator = torch.Generator().manual_seed(seed)

    def next_starts(self) -> torch.Tensor:
        """The start offsets ``(B,)`` of the next batch's windows (what :meth:`sample` reads)."""
        n_starts = self.data.numel() - self.context
        return torch.randint(0, n_starts, (self.batch_size,), generator=self.generator)

    def sample(self) -> torch.Tensor:
        """The next batch, ``(B, T + 1)`` uint8."""
        offsets = torch.arange(self.context + 1)
        return self.data[self.next_starts()[:, None] + offsets[None, :]]  # (B, T+1)

    def plan(self, steps: int) -> list[torch.Tensor]:
        """The start offsets of the next ``steps`` batches: a training plan over
        :class:`ByteWindows` (window ``i`` starts at byte ``i``)."""
        return [self.next_starts() for _ in range(steps)]


class ByteWindows(Dataset):
    """Every window of a byte array as a next-byte prediction sample.

    Item ``i`` is ``(x, y)``: the bytes ``data[i : i + T]`` and their successors
    ``data[i + 1 : i + T + 1]``, both ``(T,)`` int64, so a batch is ``(B, T)`` inputs and
    ``(B, T)`` per-position labels for :func:`netprism.train.fit`.  Nothing is copied up
    front: a window is sliced when it is read.

    Parameters
    ----------
    data : ndarray (N,) uint8
    context : int
        ``T``; the dataset holds ``N - T`` windows.

    Examples
    --------
    >>> w = ByteWindows(np.frombuffer(b"abcdef", dtype=np.uint8).copy(), context=3)
    >>> len(w), bytes(w[1][0].tolist()), bytes(w[1][1].tolist())
    (3, b'bcd', b'cde')
    """

    def __init__(self, data: np.ndarray, context: int) -> None:
        self.data = torch.from_numpy(checked_windows(data, context))
        self.context = context

    def __len__(self) -> int:
        return self.data.numel() - self.context

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        window = self.data[i : i + self.context + 1].long()  # (T + 1,)
        return window[:-1], window[1:]


def bits_per_byte(loss_nats: float | torch.Tensor) -> float | torch.Tensor:
    """Mean cross-entropy in nats per byte to bits per byte: ``loss / ln 2``.

    >>> round(bits_per_byte(math.log(256)), 6)
    8.0
    """
    return loss_nats / math.log(2)
