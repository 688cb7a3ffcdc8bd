"""Image folders (one sub-folder per class) read from the user's own disk with PIL.

Two layouts are accepted:

- ``data_dir/<split>/<class>/<image>`` with ``<split>`` ``train`` and ``test`` (``val`` is
  accepted when there is no ``test``); the class list is the union over the split folders,
  so a class index means the same class in both splits;
- ``data_dir/<class>/<image>`` when there are no split folders; each class is then split
  deterministically by ``seed`` into train and test (``test_fraction`` of it to test).

Images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, any case, searched recursively
inside each class folder) are converted to ``L`` or ``RGB`` and scaled to float32 in [0, 1]:
8-bit values are divided by 255, 16-bit grayscale values (PIL modes ``I;16*`` and ``I``, e.g.
16-bit PNGs) by 65535 (``I`` values outside [0, 65535] are clipped).

Before any pixel is decoded, the headers of every image of every split are read: all must have
one size (unless ``size=`` resizes them), and the float32 tensor plus one decoded image must
fit ``max_bytes`` (:mod:`netprism.data.readers.limits`).  Symbolic links (class folders, files,
sub-folders) that lead out of ``data_dir`` are refused unless ``follow_symlinks=True``.
Nothing here downloads or writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.readers.image_files import (
    GRAY_MODES,
    MODES,
    ImageFiles,
    decode_opened,
    open_image,
)
from netprism.data.readers.limits import FLOAT32, check_budget, resolve_max_bytes
from netprism.data.registry import DATASETS

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}
DEFAULT_TEST_FRACTION = 0.2

Entry = tuple[Path, int]  # (image file, class index)


def check_link(path: Path, base: Path, follow: bool) -> None:
    """Refuse ``path`` when it is a symbolic link leading out of ``base`` (already resolved),
    unless ``follow``."""
    if follow or not path.is_symlink():
        return
    target = path.resolve()
    if not target.is_relative_to(base):
        raise ValueError(
            f"imagefolder: {path} is a symbolic link to {target}, outside the data folder "
            f"{base}; pass follow_symlinks=True to read it"
        )


def _class_folders(folder: Path, base: Path | None = None, follow: bool = False) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in found:
        check_link(p, (base or folder).resolve(), follow)
    return found


def _walk(folder: Path, base: Path, follow: bool) -> Iterator[Path]:
    """Every path below ``folder``; symlinked sub-folders are entered only when ``follow``
    (once per real folder, so a link cycle ends), links out of ``base`` refused otherwise."""
    stack, seen = [folder], {folder.resolve()}
    while stack:
        current = stack.pop()
        try:
            children = sorted(current.iterdir())
        except OSError as err:
            raise ValueError(f"imagefolder: cannot list the folder {current}: {err}") from err
        for p in children:
            check_link(p, base, follow)
            yield p
            if p.is_dir() and (follow or not p.is_symlink()) and p.resolve() not in seen:
                seen.add(p.resolve())
                stack.append(p)


def _image_files(folder: Path, base: Path | None = None, follow: bool = False) -> list[Path]:
    real_base = (base or folder).resolve()
    files = [
        p
        for p in _walk(folder, real_base, follow)
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def index_folders(
    roots: list[Path], *, base: Path | None = None, follow_symlinks: bool = False
) -> tuple[tuple[str, ...], list[list[Entry]]]:
    """Classes (sorted union of the class folder names) and the entries under each root.

    Parameters
    ----------
    roots : list of path
        Folders holding class folders (one per split).
    base : path, optional
        The data folder that symbolic links may not leave (default: each root).
    follow_symlinks : bool
        Read what links lead to even outside ``base``.

    Raises ``ValueError`` when there is no class folder, a class has no image at all, or a
    link leaves ``base`` and ``follow_symlinks`` is false.
    """
    if base is not None:
        for root in roots:
            check_link(root, base.resolve(), follow_symlinks)
    folders = [_class_folders(root, base, follow_symlinks) for root in roots]
    names = sorted({p.name for found in folders for p in found})
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
            for f in _image_files(root / c, base or root, follow_symlinks)
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
    root: Path, split: str, seed: int, test_fraction: float | None, follow: bool
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
        classes, lists = index_folders(
            [present[s] for s in order], base=root, follow_symlinks=follow
        )
        chosen = lists[order.index(split)]
        return classes, chosen, [e for lst in lists for e in lst], f"{present[split]}"
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {fraction!r}")
    classes, (everything,) = index_folders([root], base=root, follow_symlinks=follow)
    labels = np.array([k for _, k in everything])
    test = holdout_mask(labels, len(classes), float(fraction), seed)
    keep = test if split == "test" else ~test
    chosen = [e for e, m in zip(everything, keep) if m]
    return classes, chosen, everything, f"{root} split by seed={seed}, test_fraction={fraction}"


Header = tuple[int, int, str]  # (height, width, PIL mode)


def read_headers(paths: list[Path]) -> list[Header]:
    """``(height, width, mode)`` of every image, from its header (no pixel is decoded)."""
    out = []
    for path in paths:
        with open_image(path) as im:
            out.append((im.height, im.width, im.mode))
    return out


def _default_mode(headers: list[Header]) -> str:
    """``"L"`` when every image is grayscale, else ``"RGB"``."""
    return "L" if all(mode in GRAY_MODES for _, _, mode in headers) else "RGB"


def check_one_size(paths: list[Path], headers: list[Header]) -> tuple[int, int]:
    """The ``(H, W)`` shared by all images; ``ValueError`` naming the first that differs from
    the first image."""
    height, width = headers[0][:2]
    for path, (h, w, _) in zip(paths, headers):
        if (h, w) != (height, width):
            raise ValueError(
                f"image {path} is {h}x{w} (HxW) but {paths[0]} is {height}x{width}; all "
                f"images (of every split) must have one size: pass size=(H, W) to resize them"
            )
    return height, width


def _budget_need(n: int, channels: int, size: tuple[int, int], largest: int) -> int:
    """Bytes held while loading ``n`` images: the float32 tensor and one decoded image of
    ``largest`` pixels (as float32)."""
    return (n * size[0] * size[1] + largest) * channels * FLOAT32


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
    paths: list[Path],
    mode: str,
    size: tuple[int, int] | None,
    reference: Path,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Images as float32 ``(N, C, H, W)`` in [0, 1], ``C`` 1 for ``"L"`` and 3 for ``"RGB"``.

    Each image is resized to ``size = (H, W)`` (bilinear) when given; otherwise every image
    must have the size of ``reference`` (``ValueError`` naming the first that does not).
    8-bit values are divided by 255, 16-bit grayscale ones by 65535.  The output and each
    image, as declared by the headers, must fit ``max_bytes`` (default
    ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB) before they are allocated or decoded.
    """
    budget = resolve_max_bytes(max_bytes)
    resize = size is not None
    if size is None:
        with open_image(reference) as im:
            size = (im.height, im.width)
    height, width = size
    channels = 1 if mode == "L" else 3
    what = f"{len(paths)} images of {height}x{width}x{channels} as float32"
    check_budget(_budget_need(len(paths), channels, size, 0), budget, reference, what)
    out = np.empty((len(paths), channels, height, width), dtype=np.float32)
    for i, path in enumerate(paths):
        with open_image(path) as im:  # one open: the header sizes the budget, then decode
            need = _budget_need(len(paths), channels, size, im.height * im.width)
            check_budget(need, budget, path, f"{what}, with this image decoded")
            out[i] = decode_opened(im, path, mode, size, resize=resize, reference=reference)
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
    follow_symlinks: bool = False,
    max_bytes: int | None = None,
    **kwargs: Any,
) -> TensorDataset:
    """Images from class folders: ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,).

    Parameters
    ----------
    mode : {"L", "RGB"}, optional
        Colour mode; by default ``"L"`` when every image (of both splits) is grayscale,
        else ``"RGB"``.
    size : int or (H, W), optional
        Resize every image to this size (bilinear).  By default all images (of every split,
        checked on their headers before any is loaded) must share the size of the first
        image (train split first, files sorted).
    test_fraction : float, optional
        Share of each class held out for ``split="test"`` when ``data_dir`` has no
        ``train``/``test`` folders (default 0.2); an error when it has them.
    follow_symlinks : bool
        Read class folders, sub-folders and files that symbolic links lead to outside
        ``data_dir`` (refused by default); also enter linked sub-folders inside it.
    max_bytes : int, optional
        Memory budget (default ``$NETPRISM_MAX_DATA_BYTES`` or 4 GiB) for the float32 tensor
        plus one decoded image, computed from the headers before any pixel is decoded.

    Classes are the class folder names sorted alphabetically; ``info.extra["files"]`` lists
    the image file of each sample, in order.  :func:`image_files` reads the same samples
    lazily, for folders larger than memory.
    """
    if kwargs:
        raise TypeError(f"dataset 'imagefolder' got unexpected option(s) {sorted(kwargs)}")
    budget = resolve_max_bytes(max_bytes)
    found = _listed(split, data_dir, seed, mode, size, test_fraction, follow_symlinks)
    channels, height, width = found.info.input_shape
    largest = max(h * w for h, w, _ in found.headers)
    need = _budget_need(len(found.paths), channels, (height, width), largest)
    what = f"{len(found.paths)} images of {height}x{width}x{channels} as float32"
    where = data_dir or found.reference  # data_dir: _listed refused None
    check_budget(need, budget, where, f"{what} (with the largest image decoded)")
    mode = found.info.extra["mode"]
    x = load_images(found.paths, mode, found.resize, found.reference, budget)
    y = torch.tensor(found.labels, dtype=torch.long)
    return TensorDataset(torch.from_numpy(x), y, found.info)


def image_files(
    data_dir: str | Path,
    *,
    split: str = "train",
    seed: int = 0,
    mode: str | None = None,
    size: int | tuple[int, int] | None = None,
    test_fraction: float | None = None,
    follow_symlinks: bool = False,
) -> ImageFiles:
    """The samples of ``load_dataset("imagefolder", ...)``, each image decoded only when it
    is read: file names and labels in memory, so a folder of any size trains and is scored
    batch by batch (items bit-identical to the eager reader's rows).

    Same folder layouts and options as :func:`imagefolder`; every header is still read up
    front (sizes checked, colour mode chosen).  ``image_files(d, split="train") +
    image_files(d, split="test")`` is the whole folder.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {tuple(SPLIT_FOLDERS)}, got {split!r}")
    found = _listed(split, Path(data_dir), seed, mode, size, test_fraction, follow_symlinks)
    return ImageFiles(found.paths, found.labels, found.info, resize=found.resize is not None)


class _Listing(NamedTuple):
    paths: list[Path]  # the split's images
    labels: list[int]
    info: DatasetInfo
    resize: tuple[int, int] | None  # (H, W) to resize to, or None
    headers: list[Header]  # of every image of every split
    reference: Path  # the image whose size the others share


def _listed(
    split: str,
    data_dir: Path | None,
    seed: int,
    mode: str | None,
    size: Any,
    test_fraction: float | None,
    follow_symlinks: Any,
) -> _Listing:
    """What :func:`imagefolder` and :func:`image_files` read: files, labels and headers."""
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
    if not isinstance(follow_symlinks, bool):
        raise ValueError(f"follow_symlinks must be True or False, got {follow_symlinks!r}")
    classes, chosen, everything, where = _split_entries(
        data_dir, split, seed, test_fraction, follow_symlinks
    )
    every_path = [p for p, _ in everything]
    headers = read_headers(every_path)
    out_hw = hw or check_one_size(every_path, headers)
    if not chosen:
        raise ValueError(f"imagefolder: the {split} split of {where} holds no image")
    paths = [p for p, _ in chosen]
    mode = mode or _default_mode(headers)
    channels = 1 if mode == "L" else 3
    info = DatasetInfo(
        "imagefolder",
        classes,
        (channels, *out_hw),
        f"image folder {where}",
        {"files": tuple(str(p) for p in paths), "mode": mode},
    )
    return _Listing(paths, [k for _, k in chosen], info, hw, headers, everything[0][0])
