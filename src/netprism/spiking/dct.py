"""Block DCT for DCT-coded spiking inputs: matrices, zig-zag order, frequency images, YCbCr.

Garg, Chowdhury, Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021 (arXiv 2010.01795).  Each ``b x b`` block
(stride ``s``; ``s < b`` overlaps) gets its orthonormal DCT-II coefficients ``C = Q X Q^T``;
blocks are written side by side, so each keeps its ``b x b`` footprint (32x32, b=4, s=2 ->
15x15 blocks -> a 60x60 frame).  The ``k``-th frequency image (JPEG zig-zag order) is
``g_k = C_k(block) * B_k`` tiled over the blocks, and ``sum_k g_k`` is the block-tiled image.
Everything is vectorized over blocks and batch (no per-block Python loops).
"""

from __future__ import annotations

import math

import torch

from netprism.core.validation import check_finite, check_positive_int

_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
_YCBCR_OFFSET = (0.0, 0.5, 0.5)


# --------------------------------------------------------------------------- DCT math


def dct_matrix(b: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``Q`` (b, b): ``Q[0, j] = sqrt(1/b)``,
    ``Q[i, j] = sqrt(2/b) cos((2j + 1) i pi / (2b))``.

    Examples
    --------
    >>> q = dct_matrix(4)
    >>> bool(torch.allclose(q @ q.T, torch.eye(4), atol=1e-6))
    True
    """
    check_positive_int(b, "block")
    i = torch.arange(b, dtype=torch.float64)[:, None]
    j = torch.arange(b, dtype=torch.float64)[None, :]
    q = math.sqrt(2.0 / b) * torch.cos((2 * j + 1) * i * math.pi / (2 * b))  # (b, b)
    q[0] = math.sqrt(1.0 / b)
    return q.to(dtype)


def zigzag_order(b: int) -> list[tuple[int, int]]:
    """JPEG zig-zag order of the ``b*b`` (row, col) DCT indices, low to high frequency.

    Anti-diagonal ``s = row + col`` is walked with the row increasing when ``s`` is odd and
    decreasing when ``s`` is even.

    Examples
    --------
    >>> zigzag_order(3)
    [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (1, 2), (2, 1), (2, 2)]
    """
    check_positive_int(b, "block")
    order: list[tuple[int, int]] = []
    for s in range(2 * b - 1):
        rows = list(range(max(0, s - b + 1), min(s, b - 1) + 1))
        order.extend((r, s - r) for r in (rows if s % 2 else rows[::-1]))
    return order


def dct_basis_images(b: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``b*b`` DCT basis images in zig-zag order (b*b, b, b).

    Image ``k`` with zig-zag index ``(u, v)`` is ``Q^T E_uv Q``, i.e. ``outer(Q[u], Q[v])``;
    the images are orthonormal under the Frobenius inner product, and the DCT coefficient
    ``(u, v)`` of a block is its inner product with image ``k``.

    Examples
    --------
    >>> basis = dct_basis_images(4)
    >>> basis.shape, round(float(basis[0, 0, 0]), 4)
    (torch.Size([16, 4, 4]), 0.25)
    """
    q = dct_matrix(b, dtype=torch.float64)
    u, v = (torch.tensor(idx) for idx in zip(*zigzag_order(b)))
    return (q[u][:, :, None] * q[v][:, None, :]).to(dtype)  # (b*b, b, b)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB -> YCbCr with the JPEG / BT.601 full-range matrix on values in [0, 1].

    ``Y = .299 R + .587 G + .114 B``, ``Cb = -.168736 R - .331264 G + .5 B + .5``,
    ``Cr = .5 R - .418688 G - .081312 B + .5`` (the official code's formula on ``x * 255``
    with ``+128``, divided by 255).  ``x`` is ``(..., 3, H, W)``; same shape out.

    Examples
    --------
    >>> rgb_to_ycbcr(torch.ones(1, 3, 1, 1)).flatten().tolist()
    [1.0, 0.5, 0.5]
    """
    _check_colour(x)
    m = torch.tensor(_YCBCR, dtype=x.dtype, device=x.device)  # (3, 3)
    offset = torch.tensor(_YCBCR_OFFSET, dtype=x.dtype, device=x.device)[:, None, None]
    return torch.einsum("ij,...jhw->...ihw", m, x) + offset


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (exact matrix inverse); ``(..., 3, H, W)``."""
    _check_colour(x)
    m_inv = torch.linalg.inv(torch.tensor(_YCBCR, dtype=torch.float64)).to(x.dtype)
    offset = torch.tensor(_YCBCR_OFFSET, dtype=x.dtype, device=x.device)[:, None, None]
    return torch.einsum("ij,...jhw->...ihw", m_inv.to(x.device), x - offset)


def _check_colour(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 3 or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"colour images must have shape (..., 3, H, W), got {shape}")


# --------------------------------------------------------------------------- blocks and frames


def _resolve_stride(block: int, stride: int | None) -> int:
    check_positive_int(block, "block")
    stride = block if stride is None else stride
    if not isinstance(stride, int) or isinstance(stride, bool) or not 1 <= stride <= block:
        raise ValueError(f"stride must be an int in [1, block={block}], got {stride!r}")
    return stride


def _num_blocks(size: int, block: int, stride: int, axis: str) -> int:
    if size < block or (size - block) % stride:
        raise ValueError(
            f"image {axis} {size} is not covered by blocks of {block} at stride {stride}: "
            f"expected {axis} >= {block} with ({axis} - {block}) divisible by {stride}"
        )
    return (size - block) // stride + 1


def _blocks(x: torch.Tensor, block: int, stride: int | None) -> torch.Tensor:
    """Overlapping ``b x b`` blocks of ``(B, C, H, W)`` as a view ``(B, C, n_h, n_w, b, b)``."""
    s = _resolve_stride(block, stride)
    _check_images(x, unit_range=False)
    _num_blocks(x.shape[-2], block, s, "height")
    _num_blocks(x.shape[-1], block, s, "width")
    return x.unfold(2, block, s).unfold(3, block, s)  # (B, C, n_h, n_w, b, b)


def _tile(blocks: torch.Tensor) -> torch.Tensor:
    """Write blocks side by side: (..., n_h, n_w, b, b) -> (..., n_h b, n_w b)."""
    *lead, n_h, n_w, b, _ = blocks.shape
    tiled = blocks.movedim(-2, -3)  # (..., n_h, b, n_w, b)
    return tiled.reshape(*lead, n_h * b, n_w * b)


def block_tile(x: torch.Tensor, block: int = 4, stride: int | None = None) -> torch.Tensor:
    """The block-tiled image that one full DCT cycle reconstructs (B, C, n_h b, n_w b).

    With ``stride == block`` this is ``x`` itself; with overlap each block keeps its
    ``b x b`` footprint, so shared pixels appear once per block.

    Examples
    --------
    >>> block_tile(torch.rand(2, 1, 8, 8), block=4, stride=2).shape
    torch.Size([2, 1, 12, 12])
    """
    return _tile(_blocks(x, block, stride))


def frequency_images(
    x: torch.Tensor, block: int = 4, stride: int | None = None, keep: int | None = None
) -> torch.Tensor:
    """Frequency images ``g_k = C_k(block) * B_k`` tiled over all blocks (K, B, C, H', W').

    Parameters
    ----------
    x : Tensor (B, C, H, W)
        Images (no colour conversion here; see :class:`DCTEncoder`).
    block, stride : int
        Block size ``b`` and stride ``s`` (default ``b``); ``(H - b)`` and ``(W - b)`` must be
        divisible by ``s``.
    keep : int, optional
        Keep the first ``K`` bases in zig-zag order (default all ``b*b``).

    Returns
    -------
    Tensor (K, B, C, n_h b, n_w b)
        Summed over ``K = b*b`` it equals :func:`block_tile` of ``x``.

    Examples
    --------
    >>> x = torch.rand(2, 1, 8, 8)
    >>> g = frequency_images(x, block=4)
    >>> g.shape, bool(torch.allclose(g.sum(0), x, atol=1e-5))
    (torch.Size([16, 2, 1, 8, 8]), True)
    """
    blocks = _blocks(x, block, stride)  # (B, C, n_h, n_w, b, b)
    keep = _resolve_keep(block, keep)
    basis = dct_basis_images(block, dtype=x.dtype).to(x.device)[:keep]  # (K, b, b)
    n_b, n_c, n_h, n_w = blocks.shape[:4]
    # Coefficient (u, v) of a block is its inner product with basis image k.
    flat = blocks.reshape(-1, block * block)  # (B C n_h n_w, b*b)
    coef = (flat @ basis.reshape(keep, -1).T).T  # (K, B C n_h n_w)
    # Broadcast straight into the tiled layout (K, B, C, n_h, b, n_w b): one write, and both
    # operands run along the contiguous n_w b axis (a b-long inner loop is 2x slower).
    coef = coef.reshape(keep, n_b, n_c, n_h, 1, n_w, 1).expand(-1, -1, -1, -1, -1, -1, block)
    rows = basis.repeat(1, 1, n_w).reshape(keep, 1, 1, 1, block, n_w * block)
    g = coef.reshape(keep, n_b, n_c, n_h, 1, n_w * block) * rows  # (K, B, C, n_h, b, n_w b)
    return g.reshape(keep, n_b, n_c, n_h * block, n_w * block)


def _resolve_keep(block: int, keep: int | None) -> int:
    n = block * block
    if keep is None:
        return n
    if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= n:
        raise ValueError(f"keep_bases must be an int in [1, block*block={n}], got {keep!r}")
    return keep


# --------------------------------------------------------------------------- accumulator


def _check_images(x: torch.Tensor, *, unit_range: bool, four_d: bool = True) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a floating-point tensor, got {what}")
    if four_d and x.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not four_d and x.ndim < 1:
        raise ValueError(f"inputs must have shape (B, ...), got a scalar {tuple(x.shape)}")
    check_finite(x, "images")
    if unit_range and x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(f"images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
