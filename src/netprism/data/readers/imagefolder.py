"""Image folders (one sub-folder per class) read from the user's own disk with PIL.

Two layouts are accepted:

- ``data_dir/<split>/<class>/<image>`` with ``<split>`` ``train`` and ``test`` (``val`` is
  accepted when there is no ``test``); the class list is the union over the split folders,
  so a class index means the same class in both splits;
- ``data_dir/<class>/<image>`` when there are no split folders; each class is then split
  deterministically by ``seed`` into train and test (``test_fraction`` of it to test).

Images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, any case, searched recursively
inside each class folder) are converted to ``L`` or ``RGB`` and scaled to float32 in [0, 1].
8-bit images are expected.  Nothing here downloads or writes anything.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.registry import DATASETS

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
MODES = ("L", "RGB")
DEFAULT_TEST_FRACTION = 0.2

Entry = tuple[Path, int]  # (image file, class index)


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def index_folders(roots: list[Path]) -> tuple[tuple[str, ...], list[list[Entry]]]:
    """Classes (sorted union of the class folder names) and the entries under each root.

    Raises ``ValueError`` when there is no class folder or a class has no image at all.
    """
    names = sorted({p.name for root in roots for p in _class_folders(root)})
    if not names:
        raise ValueError(
            f"no class folders found in {', '.join(map(str, roots))}: expected "
            f"<folder>/<class_name>/<image>.png|jpg|jpeg|bmp|gif"
        )
    entries: list[list[Entry]] = []
    for root in roots:
        found = [
            (f, k)
            for k, c in enumerate(names)
            if (root / c).is_dir()
            for f in _image_files(root / c)
        ]
        entries.append(found)
    counts = np.bincount([k for found in entries for _, k in found], minlength=len(names))
    empty = [names[k] for k in np.flatnonzero(counts == 0)]
    if empty:
        raise ValueError(
            f"class folder(s) {empty} in {', '.join(map(str, roots))} hold no "
            f"image ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return tuple(names), entries


def holdout_mask(labels: np.ndarray, num_classes: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean ``(N,)`` mask of the test samples: ``round(fraction * n_k)`` of each class
    ``k``, drawn with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        n_test = int(np.floor(len(idx) * fraction + 0.5))
        test[rng.permutation(idx)[:n_test]] = True
    return test


def _split_entries(
    root: Path, split: str, seed: int, test_fraction: float | None
) -> tuple[tuple[str, ...], list[Entry], list[Entry], str]:
    """(classes, entries of ``split``, entries of every split, description)."""
    folders = {
        s: next((root / n for n in names if (root / n).is_dir()), None)
        for s, names in SPLIT_FOLDERS.items()
    }
    present = {s: f for s, f in folders.items() if f is not None}
    if present:
        if test_fraction is not None:
            raise ValueError(
                f"test_fraction applies only when {root} has no train/test "
                f"folders; it has {sorted(str(f) for f in present.values())}"
            )
        if split not in present:
            raise FileNotFoundError(
                f"imagefolder: no folder for split {split!r} in {root}: "
                f"looked for {', '.join(SPLIT_FOLDERS[split])}"
            )
        order: list[str] = [s for s in ("train", "test") if s in present]
        classes, lists = index_folders([present[s] for s in order])
        chosen = lists[order.index(split)]
        return classes, chosen, [e for lst in lists for e in lst], f"{present[split]}"
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {fraction!r}")
    classes, (everything,) = index_folders([root])
    labels = np.array([k for _, k in everything])
    test = holdout_mask(labels, len(classes), float(fraction), seed)
    keep = test if split == "test" else ~test
    chosen = [e for e, m in zip(everything, keep) if m]
    return classes, chosen, everything, f"{root} split by seed={seed}, test_fraction={fraction}"


def _open(path: Path) -> Image.Image:
    """The image, header read; a header declaring more than ``PIL.Image.MAX_IMAGE_PIXELS``
    pixels is refused here (PIL would only warn), before any pixel buffer is allocated."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def _default_mode(paths: list[Path]) -> str:
    """``"L"`` when every image is grayscale, else ``"RGB"`` (reads headers only)."""
    for path in paths:
        with _open(path) as im:
            if im.mode not in GRAY_MODES:
                return "RGB"
    return "L"


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (
        (size, size)
        if isinstance(size, int)
        else tuple(size)
        if isinstance(size, (tuple, list))
        else ()
    )
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise ValueError(f"size must be a positive int or (H, W) pair, got {size!r}")
    return int(pair[0]), int(pair[1])


def load_images(
    paths: list[Path], mode: str, size: tuple[int, int] | None, reference: Path
) -> np.ndarray:
    """Images as float32 ``(N, C, H, W)`` in [0, 1], ``C`` 1 for ``"L"`` and 3 for ``"RGB"``.

    Each image is resized to ``size = (H, W)`` (bilinear) when given; otherwise every image
    must have the size of ``reference`` (``ValueError`` naming the first that does not).
    """
    resize = size is not None
    if size is None:
        with _open(reference) as im:
            size = (im.height, im.width)
    height, width = size
    channels = 1 if mode == "L" else 3
    out = np.empty((len(paths), channels, height, width), dtype=np.float32)
    for i, path in enumerate(paths):
        with _open(path) as im:
            if not resize and im.size != (width, height):
                raise ValueError(
                    f"image {path} is {im.height}x{im.width} (HxW) but {reference} "
                    f"is {height}x{width}; pass size=(H, W) to resize them all"
                )
            try:
                img = im.convert(mode)
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.float32) / 255.0
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                raise ValueError(f"cannot read image {path}: {err}") from err
        # (H, W) for "L", (H, W, 3) for "RGB" -> (C, H, W)
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return out


@DATASETS.register("imagefolder", needs_data_dir=True)
def imagefolder(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    mode: str | None = None,
    size: int | tuple[int, int] | None = None,
    test_fraction: float | None = None,
    **kwargs: Any,
) -> TensorDataset:
    """Images from class folders: ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,).

    Parameters
    ----------
    mode : {"L", "RGB"}, optional
        Colour mode; by default ``"L"`` when every image (of both splits) is grayscale,
        else ``"RGB"``.
    size : int or (H, W), optional
        Resize every image to this size (bilinear).  By default all images must share the
        size of the first image (train split first, files sorted).
    test_fraction : float, optional
        Share of each class held out for ``split="test"`` when ``data_dir`` has no
        ``train``/``test`` folders (default 0.2); an error when it has them.

    Classes are the class folder names sorted alphabetically; ``info.extra["files"]`` lists
    the image file of each sample, in order.
    """
    if kwargs:
        raise TypeError(f"dataset 'imagefolder' got unexpected option(s) {sorted(kwargs)}")
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} or None, got {mode!r}")
    hw = _check_size(size)
    if data_dir is None:
        raise ValueError(
            "dataset 'imagefolder' reads your own images: pass data_dir= (CLI: "
            "--data-dir DIR) with DIR/<train|test>/<class>/<image> or "
            "DIR/<class>/<image>"
        )
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"imagefolder: {data_dir} is not a folder; pass the folder "
            f"holding the class folders with --data-dir"
        )
    classes, chosen, everything, where = _split_entries(data_dir, split, seed, test_fraction)
    if not chosen:
        raise ValueError(f"imagefolder: the {split} split of {where} holds no image")
    paths = [p for p, _ in chosen]
    mode = mode or _default_mode([p for p, _ in everything])
    x = load_images(paths, mode, hw, everything[0][0])
    y = torch.tensor([k for _, k in chosen], dtype=torch.long)
    info = DatasetInfo(
        "imagefolder",
        classes,
        tuple(x.shape[1:]),
        f"image folder {where}",
        {"files": tuple(str(p) for p in paths), "mode": mode},
    )
    return TensorDataset(torch.from_numpy(x), y, info)
