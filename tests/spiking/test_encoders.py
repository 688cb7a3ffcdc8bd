import math

import pytest
import torch

from netprism.data import load_dataset
from netprism.spiking import (
    DCTEncoder,
    DirectEncoder,
    RateEncoder,
    accumulate_spikes,
    block_tile,
    dct_basis_images,
    dct_matrix,
    decode_ternary,
    frequency_images,
    percentile_thresholds,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
    zigzag_order,
)

# The paper's (official code's) zig-zag order for b = 4.
SPEC_ZIGZAG_4 = [
    (0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2),
    (2, 1), (3, 0), (3, 1), (2, 2), (1, 3), (2, 3), (3, 2), (3, 3),
]  # fmt: skip


@pytest.fixture(scope="module")
def digits_x():
    return load_dataset("digits").x[:256]  # (256, 1, 8, 8)


@pytest.mark.parametrize("b", [2, 4, 8])
def test_dct_matrix_orthonormal_and_bases_orthonormal(b):
    q = dct_matrix(b)
    assert torch.allclose(q @ q.T, torch.eye(b), atol=1e-6)
    basis = dct_basis_images(b).reshape(b * b, -1)  # (b*b, b*b)
    assert torch.allclose(basis @ basis.T, torch.eye(b * b), atol=1e-6)


def test_zigzag_order_exact_for_4_and_property_for_8():
    assert zigzag_order(4) == SPEC_ZIGZAG_4
    order = zigzag_order(8)
    assert sorted(order) == [(i, j) for i in range(8) for j in range(8)]
    sums = [r + c for r, c in order]
    assert sums == sorted(sums)  # anti-diagonals in increasing frequency
    for s in range(15):
        rows = [r for r, c in order if r + c == s]
        # odd diagonals go down (row increasing), even ones up, as in JPEG
        assert rows == sorted(rows, reverse=(s % 2 == 0))


def test_dct_coefficients_match_matrix_formula():
    x = torch.rand(3, 2, 4, 4, dtype=torch.float64)
    g = frequency_images(x, block=4)  # (16, 3, 2, 4, 4)
    q = dct_matrix(4, dtype=torch.float64)
    coef = q @ x @ q.T  # (3, 2, 4, 4)
    basis = dct_basis_images(4, dtype=torch.float64)
    for k, (u, v) in enumerate(zigzag_order(4)):
        assert torch.allclose(g[k], coef[..., u, v, None, None] * basis[k])


@pytest.mark.parametrize(
    ("size", "block", "stride", "frame"),
    [(8, 4, 4, 8), (8, 4, 2, 12), (32, 4, 2, 60), (16, 8, 4, 24), (28, 4, 4, 28)],
)
def test_full_cycle_reconstructs_block_tiled_image(size, block, stride, frame):
    x = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(0))
    g = frequency_images(x, block, stride)
    tiled = block_tile(x, block, stride)
    assert g.shape == (block * block, 4, 3, frame, frame) and tiled.shape == (4, 3, frame, frame)
    assert float((g.sum(0) - tiled).abs().max()) <= 1e-5
    if stride == block:
        assert torch.equal(tiled, x)


def test_overlapping_tiles_hold_each_block():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    tiled = block_tile(x, 4, 2)  # 3x3 blocks of 4x4
    assert torch.equal(tiled[0, 0, 4:8, 8:12], x[0, 0, 2:6, 4:8])  # block (1, 2)


def test_accumulator_decoding_error_bound(digits_x):
    enc = DCTEncoder(block=4)
    g = enc.all_frames(digits_x)  # (16, N, 1, 8, 8)
    theta_pos, theta_neg = enc.encode(digits_x)[1]
    assert theta_neg < 0 < theta_pos
    bound = max(theta_pos, -theta_neg)
    errors = []
    for cycles in (1, 2, 4, 8):
        spikes = accumulate_spikes(g, theta_pos, theta_neg, 16 * cycles)
        assert set(spikes.unique().tolist()) <= {-1.0, 0.0, 1.0}
        residual = decode_ternary(spikes, theta_pos, theta_neg) - cycles * g.sum(0)
        assert float(residual.abs().max()) <= bound + 1e-5
        per_cycle = (decode_ternary(spikes, theta_pos, theta_neg) / cycles - digits_x).abs()
        assert float(per_cycle.max()) <= bound / cycles + 1e-5
        errors.append(float(per_cycle.mean()))
    assert errors == sorted(errors, reverse=True)  # decoding improves with cycles


def test_accumulator_band_invariant_with_wide_thresholds():
    frames = torch.randn(5, 1000, generator=torch.Generator().manual_seed(1)) * 0.3
    lo, hi = float(frames.min()), float(frames.max())
    spikes = accumulate_spikes(frames, hi, lo, 50)
    acc = 10 * frames.sum(0) - decode_ternary(spikes, hi, lo)  # what is left in the accumulator
    assert float(acc.max()) <= hi + 1e-5 and float(acc.min()) >= lo - 1e-5


def test_percentile_thresholds_match_numpy():
    np = pytest.importorskip("numpy")
    v = torch.randn(10_001, generator=torch.Generator().manual_seed(2))
    pos, neg = percentile_thresholds(v)
    assert pos == pytest.approx(float(np.percentile(v.numpy(), 93.5)), rel=1e-6)
    assert neg == pytest.approx(float(np.percentile(v.numpy(), 6.5)), rel=1e-6)


def test_dct_encoder_shapes_timesteps_and_keep_bases():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    enc = DCTEncoder(block=4, stride=2)
    assert enc.timesteps == 48 and enc.output_size(32, 32) == (60, 60)
    s = enc(x)
    assert s.shape == (48, 2, 3, 60, 60) and s.dtype == torch.float32
    short = DCTEncoder(block=4, stride=2, keep_bases=4)
    assert short.timesteps == 12 and short(x).shape[0] == 12
    # thresholds from all frames: keep_bases only drops steps, the kept ones are unchanged
    assert short.encode(x)[1] == enc.encode(x)[1]
    assert torch.equal(short(x)[:4], s[:4])
    kept = DCTEncoder(block=4, stride=2, keep_bases=4, threshold_frames="kept")
    assert kept.encode(x)[1] != enc.encode(x)[1]


def test_dct_encoder_fixed_thresholds_ignore_batch(digits_x):
    enc = DCTEncoder(thresholds=(0.2, -0.1))
    alone = enc(digits_x[:1])
    # equal up to float rounding of the batched einsum flipping a rare threshold crossing
    assert float((enc(digits_x)[:, :1] != alone).float().mean()) < 1e-2
    assert enc.encode(digits_x)[1] == (0.2, -0.1)


def test_dct_encoder_converts_colour_not_grayscale():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    enc = DCTEncoder(thresholds=(0.1, -0.1))
    assert torch.allclose(enc.all_frames(x).sum(0), rgb_to_ycbcr(x), atol=1e-5)
    assert torch.allclose(DCTEncoder(ycbcr=False).all_frames(x).sum(0), x, atol=1e-5)
    gray = x[:, :1]
    assert torch.allclose(enc.all_frames(gray).sum(0), gray, atol=1e-5)


def test_ycbcr_hand_computed_pixel_and_round_trip():
    r, g, b = 0.8, 0.4, 0.2
    pixel = torch.tensor([r, g, b]).reshape(1, 3, 1, 1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128 / 255
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128 / 255
    # the official code works on x * 255 with +128; ours on [0, 1] with +0.5 (128/255 ~ 0.502)
    out = rgb_to_ycbcr(pixel).flatten()
    assert out[0] == pytest.approx(y, abs=1e-6)
    assert out[1] == pytest.approx(cb - 128 / 255 + 0.5, abs=1e-6)
    assert out[2] == pytest.approx(cr - 128 / 255 + 0.5, abs=1e-6)
    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-6)


def test_rate_encoder_mean_approaches_intensity():
    x = torch.linspace(0, 1, 11).reshape(1, 1, 1, 11)
    enc = RateEncoder(4000)
    s = enc(x, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4000, 1, 1, 1, 11) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert float((s.mean(0) - x).abs().max()) < 4 * math.sqrt(0.25 / 4000)
    again = enc(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, again)


def test_direct_encoder_repeats_input():
    x = torch.randn(2, 1, 3, 3)
    s = DirectEncoder(5)(x)
    assert s.shape == (5, 2, 1, 3, 3) and all(torch.equal(s[t], x) for t in range(5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block": 0}, "block must be a positive int, got 0"),
        ({"block": 4, "stride": 5}, r"stride must be an int in \[1, block=4\], got 5"),
        ({"block": 4, "stride": 0}, "stride must be"),
        ({"keep_bases": 17}, r"keep_bases must be an int in \[1, block\*block=16\], got 17"),
        ({"keep_bases": 0}, "keep_bases must be"),
        ({"cycles": 0}, "cycles must be a positive int"),
        ({"pos_pct": 101}, r"pos_pct must be a percentile in \[0, 100\]"),
        ({"pos_pct": 5, "neg_pct": 6.5}, "neg_pct must be below pos_pct"),
        ({"thresholds": (0.2, 0.1)}, "theta- < 0 < theta\\+"),
        ({"threshold_frames": "some"}, "threshold_frames must be one of"),
    ],
)
def test_dct_encoder_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCTEncoder(**kwargs)


def test_encoders_reject_bad_inputs():
    enc = DCTEncoder(block=4, stride=2)
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\], got values in"):
        enc(torch.full((1, 1, 8, 8), 1.5))
    with pytest.raises(ValueError, match=r"must have shape \(B, C, H, W\), got \(8, 8\)"):
        enc(torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"height 9 is not covered by blocks of 4 at stride 2"):
        enc(torch.rand(1, 1, 9, 8))
    with pytest.raises(ValueError, match="floating-point"):
        enc(torch.ones(1, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="must be finite"):
        enc(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="degenerate"):
        enc(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        RateEncoder(4)(torch.full((1, 4), -0.1))
    with pytest.raises(ValueError, match="timesteps must be a positive int, got 0"):
        RateEncoder(0)
    with pytest.raises(ValueError, match=r"colour images must have shape \(\.\.\., 3, H, W\)"):
        rgb_to_ycbcr(torch.rand(1, 1, 4, 4))


def test_coding_statistics_closed_forms():
    from netprism.spiking import coding_statistics

    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    binary = coding_statistics((x > 0.5).float(), steps=32)
    assert binary["extreme_fraction"] == 1.0 and binary["rate_error"] == 0.0  # exact on 0/1
    grey = coding_statistics(torch.full_like(x, 0.5) + 0.01 * (x - 0.5), steps=32)
    assert grey["extreme_fraction"] == 0.0 and grey["rate_error"] > 0.0
    with pytest.raises(ValueError, match="differ"):
        coding_statistics(torch.zeros(4, 1, 8, 8), steps=16)
