"""DCT-SNN input encoding: netprism's vectorised encoder vs a per-block Python-loop reference.

Garg, Chowdhury, Roy, "DCT-SNN: Using DCT to Distribute Spatial Information over Time for
Low-Latency Spiking Neural Networks", ICCV 2021 (arXiv 2010.01795).  Both methods compute the
same thing on the same batch:

- **netprism**: :class:`netprism.spiking.DCTEncoder` (``unfold`` the blocks, one ``einsum``
  for all coefficients, one broadcast for all frequency images, reshape to tiles; then the
  percentile thresholds and the ``T``-step ternary accumulator, vectorised over the frame).
- **loop**: :func:`loop_frames`, the official code's way: a Python loop over block positions,
  and per block ``C = Q X Q^T`` and a loop over the bases writing ``C[u, v] * B_k`` into the
  block's tile (vectorised over batch and channels only); the thresholds with
  ``numpy.percentile`` and the same accumulator loop.

Cases: batch 128 of 32x32x3 (CIFAR-like, YCbCr, b=4, stride 2 -> 60x60 frames, the official
CIFAR setup) and batch 128 of 28x28x1 (MNIST-like, b=4, stride 4), ``T = 48``.  Reported:
median ms (after one warm-up, interleaved runs) for the frames alone and for the whole encoding
(frames + thresholds + ``T`` accumulator steps), the speed-up ``loop / netprism``, and checks
that the frames agree (``allclose``, asserted) and the share of identical spikes.  Both
methods must write all ``b*b`` frames (88 MiB for the CIFAR case), so the time to fill a fresh
array of that size is printed as the memory floor that bounds the frames speed-up.

Run::

    .venv/bin/python benchmarks/bench_dct_encoder.py            # ~30 s on 2 CPU cores
    .venv/bin/python benchmarks/bench_dct_encoder.py --quick    # ~5 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from netprism.spiking import (
    DCTEncoder,
    accumulate_spikes,
    dct_basis_images,
    dct_matrix,
    frequency_images,
    rgb_to_ycbcr,
    zigzag_order,
)


def loop_frames(x: torch.Tensor, block: int, stride: int) -> torch.Tensor:
    """Per-block Python-loop frequency images (the official code's structure).

    Parameters
    ----------
    x : Tensor (B, C, H, W)

    Returns
    -------
    Tensor (b*b, B, C, n_h b, n_w b), frame ``k`` = coefficient ``k`` (zig-zag) * basis ``k``.
    """
    b, s = block, stride
    n_h, n_w = (x.shape[2] - b) // s + 1, (x.shape[3] - b) // s + 1
    q = dct_matrix(b, dtype=x.dtype)
    basis = dct_basis_images(b, dtype=x.dtype)  # (b*b, b, b)
    order = zigzag_order(b)
    out = x.new_zeros((b * b, x.shape[0], x.shape[1], n_h * b, n_w * b))
    for i in range(n_h):
        for j in range(n_w):
            blk = x[:, :, i * s : i * s + b, j * s : j * s + b]  # (B, C, b, b)
            coef = q @ blk @ q.T  # (B, C, b, b)
            for k, (u, v) in enumerate(order):
                tile = coef[:, :, u, v, None, None] * basis[k]  # (B, C, b, b)
                out[k, :, :, i * b : (i + 1) * b, j * b : (j + 1) * b] = tile
    return out


def loop_encode(x: torch.Tensor, block: int, stride: int, timesteps: int) -> torch.Tensor:
    """The reference encoder: colour, loop frames, numpy percentiles, accumulator."""
    if x.shape[1] == 3:
        x = rgb_to_ycbcr(x)
    g = loop_frames(x, block, stride)
    theta_pos, theta_neg = np.percentile(g.numpy(), [93.5, 6.5])
    return accumulate_spikes(g, float(theta_pos), float(theta_neg), timesteps)


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """One warm-up each, then ``repeats`` rounds running every method in turn (seconds)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def run_case(name: str, x: torch.Tensor, block: int, stride: int, repeats: int) -> float:
    enc = DCTEncoder(block=block, stride=stride, cycles=3)
    xc = rgb_to_ycbcr(x) if x.shape[1] == 3 else x
    ours_g, ref_g = frequency_images(xc, block, stride), loop_frames(xc, block, stride)
    same = torch.allclose(ours_g, ref_g, atol=1e-5)
    assert same, f"{name}: frames differ by {float((ours_g - ref_g).abs().max()):.3g}"
    agree = float((enc(x) == loop_encode(x, block, stride, enc.timesteps)).float().mean())
    times = interleaved(
        {
            "frames netprism": lambda: frequency_images(xc, block, stride),
            "frames loop": lambda: loop_frames(xc, block, stride),
            "encode netprism": lambda: enc(x),
            "encode loop": lambda: loop_encode(x, block, stride, enc.timesteps),
            "write floor": lambda: torch.empty(ours_g.shape).fill_(1.0),
        },
        repeats,
    )
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    frame = tuple(ours_g.shape[-2:])
    print(f"\n## {name}: b={block}, stride={stride}, frames {frame}, T={enc.timesteps}\n")
    print("| stage | netprism ms | loop ms | loop / netprism |")
    print("|---|---:|---:|---:|")
    for stage in ("frames", "encode"):
        ours, loop = med[f"{stage} netprism"], med[f"{stage} loop"]
        print(f"| {stage} | {ours:.2f} | {loop:.2f} | {loop / ours:.1f}x |")
    ratio = med["frames loop"] / med["frames netprism"]
    floor = med["write floor"]
    err = float((ours_g - ref_g).abs().max())
    print(f"\n- frames allclose: {same} (max abs diff {err:.2g}); identical spikes {agree:.4%}")
    print(
        f"- frames speed-up {ratio:.1f}x; writing a fresh array of the frames' size "
        f"({ours_g.numel() * 4 / 2**20:.0f} MiB) alone takes {floor:.2f} ms, so netprism is "
        f"{med['frames netprism'] / floor:.1f}x and the loop {med['frames loop'] / floor:.1f}x "
        "that memory floor"
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 32, 3 runs (~5 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (128)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (7)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch = args.batch or (32 if args.quick else 128)
    repeats = args.repeats or (3 if args.quick else 7)
    gen = torch.Generator().manual_seed(0)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print("# bench_dct_encoder")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {batch}, "
        f"timed runs {repeats} (median, after 1 warm-up, interleaved); load average {load}"
    )
    for name, shape, stride in (
        ("32x32x3 (CIFAR-like)", (batch, 3, 32, 32), 2),
        ("28x28x1 (MNIST-like)", (batch, 1, 28, 28), 4),
    ):
        run_case(name, torch.rand(shape, generator=gen), 4, stride, repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
