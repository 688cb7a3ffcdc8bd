"""Input encoders for spiking networks: rate (Bernoulli), direct (analog) and DCT coding.

Garg, Chowdhury, Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021 (arXiv 2010.01795).  The DCT encoder follows
the authors' code (``SayeedChowdhury/dct-snn``), vectorised over blocks and batch:

1. 3-channel input is converted to YCbCr (JPEG / BT.601 matrix); grayscale is left as is.
2. Each ``b x b`` block (stride ``s``; ``s < b`` overlaps) gets its orthonormal DCT-II
   coefficients ``C = Q X Q^T``.  Blocks are written side by side, so each keeps its ``b x b``
   footprint: an ``H x W`` image gives ``n_h = (H - b) / s + 1`` rows of blocks and a frame of
   ``H' = n_h b`` rows (32x32, b=4, s=2 -> 15x15 blocks -> 60x60).
3. The ``k``-th frequency image (JPEG zig-zag order, low to high frequency) is
   ``g_k = C_k(block) * B_k`` tiled over the blocks; ``sum_k g_k`` is the block-tiled image.
4. At step ``t`` the frame ``g_{t mod K}`` is added to a leak-free accumulator that emits a
   ternary spike: ``+1`` (and subtracts ``theta+``) above ``theta+``, ``-1`` (and subtracts
   ``theta-`` < 0) below ``theta-``.  The thresholds are the 93.5th / 6.5th percentiles of all
   ``g`` values in the batch, recomputed per call as in the official code, or fixed.

``keep_bases=K`` (not in the official code, which hard-wires all ``b*b`` bases) keeps the first
``K`` zig-zag bases per cycle, so ``T = K * cycles``: the paper's latency knob.

Every encoder returns a float tensor of shape ``(T, B, C, H', W')``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from netprism.core.validation import check_positive_int
from netprism.spiking.dct import (
    _check_images,
    _num_blocks,
    _resolve_keep,
    _resolve_stride,
    block_tile,
    frequency_images,
    rgb_to_ycbcr,
)

THRESHOLD_FRAMES = ("all", "kept")


def percentile_thresholds(
    frames: torch.Tensor, pos_pct: float = 93.5, neg_pct: float = 6.5
) -> tuple[float, float]:
    """``(theta+, theta-)``: the ``pos_pct`` / ``neg_pct`` percentiles of all values in
    ``frames`` (any shape), linearly interpolated as ``numpy.percentile``.

    Examples
    --------
    >>> percentile_thresholds(torch.arange(101.0), 90, 10)
    (90.0, 10.0)
    """
    _check_pcts(pos_pct, neg_pct)
    flat = frames.detach().reshape(-1)
    if flat.device.type == "cpu":  # one numpy partition for both ranks: ~4x faster on CPU
        pos, neg = np.percentile(flat.numpy(), [pos_pct, neg_pct])
        return float(pos), float(neg)
    return _percentile(flat, pos_pct), _percentile(flat, neg_pct)


def _percentile(flat: torch.Tensor, pct: float) -> float:
    # kthvalue instead of torch.quantile, which refuses inputs over 16M values.
    pos = pct / 100.0 * (flat.numel() - 1)
    lo, frac = int(math.floor(pos)), pos - math.floor(pos)
    v_lo = float(flat.kthvalue(lo + 1).values)
    if frac == 0.0:
        return v_lo
    v_hi = float(flat.kthvalue(min(lo + 2, flat.numel())).values)
    return v_lo + frac * (v_hi - v_lo)


def accumulate_spikes(
    frames: torch.Tensor, theta_pos: float, theta_neg: float, timesteps: int
) -> torch.Tensor:
    """Leak-free ternary accumulator driven by ``frames`` in a cycle (T, *frame_shape).

    At step ``t``: ``acc += frames[t mod K]``; ``acc > theta_pos`` emits ``+1`` and subtracts
    ``theta_pos``; ``acc < theta_neg`` emits ``-1`` and subtracts ``theta_neg`` (soft reset).
    So ``sum inputs - decode_ternary(spikes) = acc``; whenever every input lies in
    ``[theta_neg, theta_pos]`` the accumulator stays in that band, so the decoding error is at
    most ``max(theta_pos, |theta_neg|)`` after any number of cycles.

    Parameters
    ----------
    frames : Tensor (K, *frame_shape)
    theta_pos, theta_neg : float
        Thresholds, ``theta_neg < 0 < theta_pos``.
    timesteps : int
        ``T``; a multiple of ``K`` gives whole cycles.

    Examples
    --------
    >>> s = accumulate_spikes(torch.tensor([[0.6], [0.0]]), 0.5, -0.5, 4)
    >>> s.flatten().tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    _check_thresholds(theta_pos, theta_neg)
    check_positive_int(timesteps, "timesteps")
    acc = torch.zeros_like(frames[0])
    out = frames.new_empty((timesteps, *frames.shape[1:]))
    for t in range(timesteps):
        acc.add_(frames[t % len(frames)])
        pos = (acc > theta_pos).to(frames.dtype)
        neg = (acc < theta_neg).to(frames.dtype)
        acc.add_(pos, alpha=-theta_pos).add_(neg, alpha=-theta_neg)  # soft reset
        torch.sub(pos, neg, out=out[t])
    return out


def decode_ternary(spikes: torch.Tensor, theta_pos: float, theta_neg: float) -> torch.Tensor:
    """Sum of emitted charge ``theta+ N+ + theta- N-`` over time: (T, ...) -> (...).

    Examples
    --------
    >>> decode_ternary(torch.tensor([[1.0], [-1.0], [1.0]]), 0.5, -0.25).tolist()
    [0.75]
    """
    return theta_pos * (spikes > 0).sum(0).to(spikes.dtype) + theta_neg * (spikes < 0).sum(0).to(
        spikes.dtype
    )


# --------------------------------------------------------------------------- encoders


class RateEncoder:
    """Rate (Poisson/Bernoulli) coding: ``s_t ~ Bernoulli(x)`` independently per step.

    Parameters
    ----------
    timesteps : int
        ``T``.

    Calling it on ``x`` (B, ...) in [0, 1] returns spikes ``(T, B, ...)`` in {0, 1}, float;
    pass ``generator=`` for repeatable draws.

    Examples
    --------
    >>> enc = RateEncoder(8)
    >>> enc(torch.full((2, 1, 4, 4), 0.5), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([8, 2, 1, 4, 4])
    """

    def __init__(self, timesteps: int) -> None:
        self.timesteps = check_positive_int(timesteps, "timesteps")

    def __call__(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        _check_images(x, unit_range=True, four_d=False)
        u = torch.rand((self.timesteps, *x.shape), generator=generator, dtype=x.dtype)
        return (u.to(x.device) < x).to(x.dtype)  # (T, B, ...)

    def __repr__(self) -> str:
        return f"RateEncoder(timesteps={self.timesteps})"


class DirectEncoder:
    """Direct (analog) coding: the input itself at every step, ``(B, ...) -> (T, B, ...)``.

    Returns a broadcast view (no copy); ``.clone()`` it before writing into it.

    Examples
    --------
    >>> DirectEncoder(3)(torch.ones(2, 1, 4, 4)).shape
    torch.Size([3, 2, 1, 4, 4])
    """

    def __init__(self, timesteps: int) -> None:
        self.timesteps = check_positive_int(timesteps, "timesteps")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, unit_range=False, four_d=False)
        return x.unsqueeze(0).expand(self.timesteps, *x.shape)

    def __repr__(self) -> str:
        return f"DirectEncoder(timesteps={self.timesteps})"


class DCTEncoder:
    """DCT-SNN input coding: block-DCT frequency images through a ternary accumulator.

    Parameters
    ----------
    block : int
        Block size ``b`` (the official models use 4; ``b*b`` bases).
    stride : int, optional
        Block stride, ``1 <= s <= b`` (default ``b``; the official CIFAR model uses 2).
    keep_bases : int, optional
        Keep the first ``K`` zig-zag bases of each cycle (default all ``b*b``).
    cycles : int
        Repetitions of the ``K`` frames; ``T = K * cycles`` (48 = 16 x 3 in the paper).
    pos_pct, neg_pct : float
        Percentiles of all frequency-image values in the batch giving ``theta+`` / ``theta-``.
    thresholds : (float, float), optional
        Fixed ``(theta+, theta-)`` used instead of per-batch percentiles (which make a sample's
        spikes depend on its batch-mates).
    threshold_frames : {"all", "kept"}
        Percentiles over all ``b*b`` frames (as the official code, so dropping bases leaves the
        thresholds unchanged) or only over the kept ones.
    ycbcr : bool
        Convert 3-channel input to YCbCr first (grayscale is never converted).

    Calling it on images ``(B, C, H, W)`` in [0, 1] returns ternary spikes
    ``(T, B, C, n_h b, n_w b)`` (float, values in {-1, 0, 1}).

    Examples
    --------
    >>> enc = DCTEncoder(block=4, stride=2, keep_bases=8, cycles=2)
    >>> enc(torch.rand(2, 3, 8, 8)).shape, enc.timesteps
    (torch.Size([16, 2, 3, 12, 12]), 16)
    """

    def __init__(
        self,
        block: int = 4,
        stride: int | None = None,
        keep_bases: int | None = None,
        *,
        cycles: int = 3,
        pos_pct: float = 93.5,
        neg_pct: float = 6.5,
        thresholds: tuple[float, float] | None = None,
        threshold_frames: str = "all",
        ycbcr: bool = True,
    ) -> None:
        self.block = block
        self.stride = _resolve_stride(block, stride)
        self.keep_bases = _resolve_keep(block, keep_bases)
        self.cycles = check_positive_int(cycles, "cycles")
        _check_pcts(pos_pct, neg_pct)
        self.pos_pct, self.neg_pct = float(pos_pct), float(neg_pct)
        if thresholds is not None:
            if len(thresholds) != 2:
                raise ValueError(f"thresholds must be (theta+, theta-), got {thresholds!r}")
            _check_thresholds(*thresholds)
            thresholds = (float(thresholds[0]), float(thresholds[1]))
        self.thresholds = thresholds
        if threshold_frames not in THRESHOLD_FRAMES:
            raise ValueError(
                f"threshold_frames must be one of {THRESHOLD_FRAMES}, got {threshold_frames!r}"
            )
        self.threshold_frames = threshold_frames
        self.ycbcr = bool(ycbcr)

    @property
    def timesteps(self) -> int:
        """``T = keep_bases * cycles``."""
        return self.keep_bases * self.cycles

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Frame size ``(H', W') = (n_h b, n_w b)`` for ``H x W`` images."""
        b, s = self.block, self.stride
        return (
            _num_blocks(height, b, s, "height") * b,
            _num_blocks(width, b, s, "width") * b,
        )

    def all_frames(self, x: torch.Tensor) -> torch.Tensor:
        """All ``b*b`` frequency images after colour conversion (b*b, B, C, H', W')."""
        return self._frames(x, None)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
        """Spikes (T, B, C, H', W') and the ``(theta+, theta-)`` used to make them."""
        need_all = self.thresholds is None and self.threshold_frames == "all"
        g = self._frames(x, None if need_all else self.keep_bases)  # (b*b or K, B, C, H', W')
        kept = g[: self.keep_bases]  # (K, B, C, H', W')
        theta = self.thresholds or self._batch_thresholds(g)
        return accumulate_spikes(kept, theta[0], theta[1], self.timesteps), theta

    def _frames(self, x: torch.Tensor, keep: int | None) -> torch.Tensor:
        _check_images(x, unit_range=True)
        if self.ycbcr and x.shape[1] == 3:
            x = rgb_to_ycbcr(x)
        return frequency_images(x, self.block, self.stride, keep)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def _batch_thresholds(self, g: torch.Tensor) -> tuple[float, float]:
        pos, neg = percentile_thresholds(g, self.pos_pct, self.neg_pct)
        if not neg < 0 < pos:
            raise ValueError(
                f"percentile thresholds are degenerate: theta+={pos!r} ({self.pos_pct}th pct), "
                f"theta-={neg!r} ({self.neg_pct}th pct); expected theta- < 0 < theta+ (is the "
                "batch blank?): pass fixed thresholds=(theta+, theta-)"
            )
        return pos, neg

    def __repr__(self) -> str:
        return (
            f"DCTEncoder(block={self.block}, stride={self.stride}, keep_bases={self.keep_bases}, "
            f"cycles={self.cycles}, T={self.timesteps}, thresholds={self.thresholds})"
        )


# --------------------------------------------------------------------------- checks


def _check_pcts(pos_pct: float, neg_pct: float) -> None:
    for value, name in ((pos_pct, "pos_pct"), (neg_pct, "neg_pct")):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 100:
            raise ValueError(f"{name} must be a percentile in [0, 100], got {value!r}")
    if not neg_pct < pos_pct:
        raise ValueError(f"neg_pct must be below pos_pct, got neg_pct={neg_pct}, pos_pct={pos_pct}")


def _check_thresholds(theta_pos: float, theta_neg: float) -> None:
    ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (theta_pos, theta_neg))
    if not ok or not theta_neg < 0 < theta_pos:
        raise ValueError(
            "thresholds must be finite with theta- < 0 < theta+, got "
            f"theta+={theta_pos!r}, theta-={theta_neg!r}"
        )


def coding_statistics(x: torch.Tensor, steps: int, block: int = 4) -> dict[str, float]:
    """Why rate or DCT coding wins on a dataset, after ``steps`` time steps.

    Garg, Chowdhury & Roy (DCT-SNN, ICCV 2021) argue that DCT coding beats rate coding when
    pixel values are spread out (continuous-tone images) and loses its edge on near-binary
    ones; these statistics measure both sides of that argument on a dataset.

    Parameters
    ----------
    x : Tensor (N, C, H, W)
        Images in [0, 1]; not all identical.
    steps : int
        Time steps ``T`` of the rate code; the DCT code gets ``max(1, T // block**2)`` cycles.
    block : int
        DCT block size.

    Returns
    -------
    dict of str -> float
        ``extreme_fraction``: pixels within 0.1 of 0 or 1; ``signal_std``: pixel std across
        images (mean over pixels); ``rate_error`` / ``dct_error``: mean |decoded - image| per
        pixel of the rate code (spike count / T, drawn with seed 0) and of the DCT code
        (decoded charge per cycle); the ratios to ``signal_std`` are the coding noise relative
        to what tells images apart.

    Examples
    --------
    >>> x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> binary = coding_statistics((x > 0.5).float(), steps=16)  # rate coding is exact here
    >>> binary["extreme_fraction"], binary["rate_error"], binary["dct_error"] > 0
    (1.0, 0.0, True)
    """
    x = x.float()
    signal = float(x.std(dim=0).mean())
    if not signal > 0:
        raise ValueError("coding_statistics needs images that differ: their pixel std is 0")
    gen = torch.Generator().manual_seed(0)
    rate = RateEncoder(steps)(x, generator=gen).mean(0)
    enc = DCTEncoder(block=block, cycles=max(1, steps // (block * block)))
    spikes, (pos, neg) = enc.encode(x)
    dct = decode_ternary(spikes, pos, neg) / enc.cycles
    rate_err = float((rate - x).abs().mean())
    dct_err = float((dct - block_tile(x, block)).abs().mean())
    extreme = float(((x < 0.1) | (x > 0.9)).float().mean())
    return {
        "extreme_fraction": extreme,
        "signal_std": signal,
        "rate_error": rate_err,
        "dct_error": dct_err,
        "rate_error_over_signal": rate_err / signal,
        "dct_error_over_signal": dct_err / signal,
    }
