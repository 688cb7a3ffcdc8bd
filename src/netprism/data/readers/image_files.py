"""Decoding one image file, and :class:`ImageFiles`: a dataset that decodes each image only when
it is read, so a folder far larger than memory trains and is scored batch by batch.

Pixels are float32 in [0, 1]: 8-bit values divided by 255, 16-bit grayscale values (PIL modes
``I;16*`` and ``I``) by 65535 (``I`` values outside [0, 65535] clipped).  A header declaring more
than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused before any pixel buffer is allocated.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from netprism.data.base import DatasetInfo, InfoProperties

WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})  # scaled by 1 / 65535
GRAY_MODES = frozenset({"1", "L", "LA", "F"}) | WIDE_MODES
WIDE_MAX = 65535.0
MODES = ("L", "RGB")

__all__ = ["ImageFiles", "decode_image", "open_image"]


def open_image(path: Path) -> Image.Image:
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


def image_pixels(im: Image.Image, mode: str, size: tuple[int, int]) -> np.ndarray:
    """float32 ``(H, W)`` (``"L"``) or ``(H, W, 3)`` (``"RGB"``) in [0, 1] of ``size``."""
    height, width = size
    if im.mode not in WIDE_MODES:
        img = im.convert(mode)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.float32) / 255.0
    img = im.convert("F")  # 16-bit (or 32-bit int) gray: keep every level, scale by 65535
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.clip(np.asarray(img, dtype=np.float32) / WIDE_MAX, 0.0, 1.0)
    return arr if mode == "L" else np.repeat(arr[:, :, None], 3, axis=2)


def decode_image(
    path: Path, mode: str, size: tuple[int, int], *, resize: bool, reference: Path | str
) -> np.ndarray:
    """One image as float32 ``(C, H, W)`` in [0, 1] (``C`` 1 for ``"L"``, 3 for ``"RGB"``).

    Resized (bilinear) to ``size = (H, W)`` when ``resize``; otherwise an image of another
    size is a ``ValueError`` naming it and ``reference``, whose size every image must share.
    """
    with open_image(path) as im:
        return decode_opened(im, path, mode, size, resize=resize, reference=reference)


def decode_opened(
    im: Image.Image,
    path: Path,
    mode: str,
    size: tuple[int, int],
    *,
    resize: bool,
    reference: Path | str,
) -> np.ndarray:
    """:func:`decode_image` of an image already opened (its header read) from ``path``."""
    height, width = size
    if not resize and im.size != (width, height):
        raise ValueError(
            f"image {path} is {im.height}x{im.width} (HxW) but {reference} "
            f"is {height}x{width}; pass size=(H, W) to resize them all"
        )
    try:
        arr = image_pixels(im, mode, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


class ImageFiles(InfoProperties, Dataset):
    """Image files with their labels, decoded one at a time when an item is read.

    Items are ``(x, y)``: ``x`` float32 ``(C, H, W)`` in [0, 1], ``y`` a 0-d int64 tensor.
    Only the file names and the labels are held in memory, so a ``DataLoader`` (workers
    included) streams a folder of any size.  Made by
    :func:`~netprism.data.image_files`.

    Parameters
    ----------
    files : sequence of path
        One image per sample.
    labels : sequence of int or LongTensor (N,)
        Class indices in ``[0, len(info.classes))``.
    info : DatasetInfo
        ``input_shape`` is ``(C, H, W)``; ``extra["mode"]`` is ``"L"`` or ``"RGB"``.
    resize : bool
        Resize every image to ``(H, W)`` (bilinear); otherwise an image of another size is an
        error when it is read.

    Attributes
    ----------
    labels, targets : LongTensor (N,)
        The labels, readable without decoding any image.
    files : tuple of str
    """

    def __init__(
        self,
        files: Sequence[Path | str],
        labels: Sequence[int] | torch.Tensor,
        info: DatasetInfo,
        *,
        resize: bool = False,
    ) -> None:
        self.paths = tuple(Path(p) for p in files)
        self.labels = torch.as_tensor(labels, dtype=torch.long).clone()
        if len(self.paths) == 0:
            raise ValueError(f"dataset {info.name!r} holds no image")
        if self.labels.shape != (len(self.paths),):
            raise ValueError(
                f"expected one label per file ({len(self.paths)}), got shape "
                f"{tuple(self.labels.shape)}"
            )
        k = len(info.classes)
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= k:
            raise ValueError(f"labels must lie in [0, {k}), got {self.labels.unique().tolist()}")
        mode = info.extra.get("mode")
        if mode not in MODES or len(info.input_shape) != 3:
            raise ValueError(
                f"info must have input_shape (C, H, W) and extra['mode'] in {MODES}, got "
                f"{info.input_shape} and {mode!r}"
            )
        self.info = dataclasses.replace(info, extra={**info.extra, "files": self.files})
        self.mode: str = mode
        self.resize = resize

    @property
    def targets(self) -> torch.Tensor:
        return self.labels

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(str(p) for p in self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = (self.input_shape[1], self.input_shape[2])
        arr = decode_image(
            self.paths[index], self.mode, size, resize=self.resize, reference=self.paths[0]
        )
        return torch.from_numpy(arr), self.labels[index]

    def subset(self, index: Sequence[int] | torch.Tensor) -> ImageFiles:
        """The files ``index`` (in that order), with their labels."""
        idx = torch.as_tensor(index, dtype=torch.long).tolist()
        return ImageFiles(
            [self.paths[i] for i in idx], self.labels[idx], self.info, resize=self.resize
        )

    def __add__(self, other: Dataset) -> ImageFiles:  # type: ignore[override]
        """The files of both (this one's first); they must share classes and input shape."""
        if not isinstance(other, ImageFiles):
            return NotImplemented
        if (other.classes, other.input_shape, other.mode) != (
            self.classes, self.input_shape, self.mode
        ):  # fmt: skip
            raise ValueError(
                f"cannot join image files of classes {other.classes}, shape "
                f"{other.input_shape}, mode {other.mode} to {self.classes}, "
                f"{self.input_shape}, {self.mode}"
            )
        return ImageFiles(
            self.paths + other.paths,
            torch.cat([self.labels, other.labels]),
            self.info,
            resize=self.resize or other.resize,
        )

    def __repr__(self) -> str:
        return (
            f"ImageFiles(name={self.name!r}, N={len(self)}, K={self.num_classes}, "
            f"input_shape={self.input_shape}, source={self.info.source!r})"
        )
