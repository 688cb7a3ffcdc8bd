"""Continuous-tone embedded image sets, for encoders that care about grey levels (DCT coding).

scikit-learn's 8x8 digits are nearly binary (most pixels are 0 or 1 after scaling), which
flatters rate coding and starves a frequency code.  These sets keep real grey levels:

- ``digits_tone``: the bundled digits upsampled to 16x16 (bilinear), blurred with a small
  Gaussian (``sigma`` px) and with contrast reduced around mid-grey,
  ``x -> 0.5 + contrast * (x - 0.5)`` (default ``contrast=0.5``, so values lie in
  [0.25, 0.75]).  Same fixed stratified 75/25 split as ``digits``; ``seed`` is ignored.
- ``textures``: synthetic 16x16 grayscale sinusoidal gratings, 10 classes = 5 orientations
  (0, 36, ..., 144 degrees) x 2 spatial-frequency bands (2 and 4 cycles per 16 px), each
  sample with jittered orientation (+-6 deg) and frequency (+-10 %), random phase, random
  contrast and mean grey, plus additive smooth (Gaussian-blurred) noise.  The per-sample
  parameters are planted in ``extras`` and the class prototypes in ``info.extra``.

Made for DCT-SNN (Garg, Chowdhury, Roy, ICCV 2021, arXiv 2010.01795) experiments at small
scale; neither set is from the paper, which uses CIFAR and TinyImageNet.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from netprism.core.validation import check_fraction, check_positive_int
from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.registry import DATASETS

TEXTURE_ORIENTATIONS_DEG = (0.0, 36.0, 72.0, 108.0, 144.0)
TEXTURE_CYCLES = (2.0, 4.0)  # cycles per image side (16 px): periods of 8 and 4 px


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with reflect padding (radius ``3 sigma``).

    Examples
    --------
    >>> x = torch.rand(2, 1, 8, 8)
    >>> y = gaussian_blur(x, 1.0)
    >>> y.shape, bool(y.std() < x.std())
    (torch.Size([2, 1, 8, 8]), True)
    """
    if sigma == 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()  # (2r + 1,)
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H


@DATASETS.register("digits_tone")
def digits_tone(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    size: int = 16,
    sigma: float = 0.7,
    contrast: float = 0.5,
    **kwargs: Any,
) -> TensorDataset:
    """Continuous-tone digits ``(N, 1, size, size)``: upsampled, blurred, low contrast.

    ``x -> 0.5 + contrast * (blur(upsample(x)) - 0.5)``; 1,347 train / 450 test with the
    ``digits`` split (fixed, ``seed`` ignored).
    """
    _reject("digits_tone", kwargs)
    check_positive_int(size, "size")
    check_fraction(contrast, "contrast", low=0.0, high=1.0, high_inclusive=True)
    if not isinstance(sigma, (int, float)) or not 0 <= sigma <= size:
        raise ValueError(f"sigma must be a number of pixels in [0, size={size}], got {sigma!r}")
    from netprism.data.embedded import digits  # here: embedded imports this module's registry

    base = digits(split=split, seed=seed)
    x = F.interpolate(base.x, size=(size, size), mode="bilinear", align_corners=False)
    x = gaussian_blur(x, float(sigma)).clamp(0.0, 1.0)  # (N, 1, size, size)
    x = 0.5 + contrast * (x - 0.5)
    info = DatasetInfo(
        "digits_tone",
        base.classes,
        (1, size, size),
        f"digits split, bilinear {size}x{size}, Gaussian sigma={sigma}, "
        f"x -> 0.5 + {contrast} (x - 0.5)",
        {"contrast": contrast, "sigma": sigma},
    )
    return TensorDataset(x, base.y, info)


@DATASETS.register("textures")
def textures(
    *,
    split: str = "train",
    data_dir: Path | None = None,
    seed: int = 0,
    n: int = 2000,
    size: int = 16,
    noise: float = 0.05,
    **kwargs: Any,
) -> TensorDataset:
    """Oriented sinusoidal gratings ``(N, 1, size, size)`` in [0, 1], 10 balanced classes.

    Class ``k`` has orientation ``TEXTURE_ORIENTATIONS_DEG[k // 2]`` and frequency
    ``TEXTURE_CYCLES[k % 2]`` cycles per ``size`` pixels.  A sample is
    ``mean + amp * cos(2 pi f (x cos o + y sin o) + phase) + noise``, with ``o`` and ``f``
    jittered (+-6 deg, +-10 %), phase uniform, ``amp ~ U(0.12, 0.3)``,
    ``mean ~ U(0.4, 0.6)`` and noise of std ``noise`` blurred with sigma 1 px.  Train and test
    are different draws for the same ``seed``; ``extras`` holds each sample's
    ``orientation`` (radians), ``cycles``, ``phase``, ``amplitude`` and ``mean``.
    """
    _reject("textures", kwargs)
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    check_fraction(noise, "noise", high=1.0, high_inclusive=True)
    n_cls = len(TEXTURE_ORIENTATIONS_DEG) * len(TEXTURE_CYCLES)
    gen = torch.Generator().manual_seed(seed * 2 + (1 if split == "train" else 2) + 20_000)
    y = (torch.arange(n) % n_cls)[torch.randperm(n, generator=gen)]  # (N,) balanced

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)  # (N,)

    orient = torch.tensor(TEXTURE_ORIENTATIONS_DEG).deg2rad()[y // 2] + uniform(-6, 6).deg2rad()
    cycles = torch.tensor(TEXTURE_CYCLES)[y % 2] * uniform(0.9, 1.1)
    phase, amp, mean = uniform(0, 2 * math.pi), uniform(0.12, 0.3), uniform(0.4, 0.6)
    grid = torch.arange(size, dtype=torch.float32)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")  # (size, size) each
    proj = cols * orient.cos()[:, None, None] + rows * orient.sin()[:, None, None]  # (N, S, S)
    wave = torch.cos(2 * math.pi * cycles[:, None, None] / size * proj + phase[:, None, None])
    smooth = gaussian_blur(torch.randn(n, 1, size, size, generator=gen), 1.0)
    smooth = smooth / smooth.std().clamp_min(1e-12)  # unit std before scaling
    x = mean[:, None, None, None] + amp[:, None, None, None] * wave[:, None] + noise * smooth
    x = x.clamp(0.0, 1.0)  # (N, 1, size, size); clipping is rare (|x - 0.5| <= 0.4 + noise)
    classes = tuple(
        f"{int(o)}deg-{int(c)}cyc" for o in TEXTURE_ORIENTATIONS_DEG for c in TEXTURE_CYCLES
    )
    info = DatasetInfo(
        "textures",
        classes,
        (1, size, size),
        f"oriented gratings seed={seed} split={split} noise={noise}",
        {
            "orientations_deg": torch.tensor(TEXTURE_ORIENTATIONS_DEG).repeat_interleave(2),
            "cycles": torch.tensor(TEXTURE_CYCLES).repeat(len(TEXTURE_ORIENTATIONS_DEG)),
        },
    )
    extras = {"orientation": orient, "cycles": cycles, "phase": phase, "amplitude": amp}
    return TensorDataset(x, y, info, {**extras, "mean": mean})


def _reject(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"dataset {name!r} got unexpected option(s) {sorted(kwargs)}")
