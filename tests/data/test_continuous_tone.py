import math
import time

import pytest
import torch

from netprism.data import DATASETS, load_dataset
from netprism.data.continuous_tone import TEXTURE_CYCLES, TEXTURE_ORIENTATIONS_DEG


def near_extremes(x: torch.Tensor) -> float:
    """Fraction of pixels within 0.1 of 0 or 1 (the contrast statistic)."""
    return float(((x < 0.1) | (x > 0.9)).float().mean())


def test_registered():
    assert {"digits_tone", "textures"} <= set(DATASETS.names())


def test_digits_tone_shapes_split_and_contrast():
    digits = load_dataset("digits")
    train, test = load_dataset("digits_tone"), load_dataset("digits_tone", split="test")
    assert (len(train), len(test)) == (1347, 450) and train.x.shape[1:] == (1, 16, 16)
    assert torch.equal(train.y, digits.y)  # same split and order as `digits`
    assert torch.equal(load_dataset("digits_tone", seed=7).x, train.x)  # deterministic
    assert 0.25 <= float(train.x.min()) and float(train.x.max()) <= 0.75  # contrast 0.5
    # digits is nearly binary; digits_tone has no pixel within 0.1 of black or white
    assert near_extremes(digits.x) > 0.5 and near_extremes(train.x) == 0.0
    low = load_dataset("digits_tone", contrast=0.2, sigma=0.0)
    assert float(low.x.max() - low.x.min()) <= 0.2 + 1e-6
    # still the same digits: down-sampled back, the tone set correlates with the original
    back = torch.nn.functional.avg_pool2d(train.x, 2)
    corr = torch.corrcoef(torch.stack([back.flatten(), digits.x.flatten()]))[0, 1]
    assert float(corr) > 0.9


def test_textures_shapes_ranges_balance_and_determinism():
    t0 = time.perf_counter()
    train = load_dataset("textures", n=1000, seed=3)
    assert time.perf_counter() - t0 < 2.0
    test = load_dataset("textures", split="test", n=500, seed=3)
    assert train.x.shape == (1000, 1, 16, 16) and train.num_classes == 10
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    assert torch.bincount(train.y).tolist() == [100] * 10
    assert torch.bincount(test.y).tolist() == [50] * 10
    assert torch.equal(load_dataset("textures", n=1000, seed=3).x, train.x)
    assert not torch.equal(load_dataset("textures", n=1000, seed=4).x, train.x)
    assert not torch.equal(test.x, train.x[:500])
    assert near_extremes(train.x) < 0.05  # continuous tone
    assert set(train.extras) == {"orientation", "cycles", "phase", "amplitude", "mean"}


def test_textures_planted_classes_recovered_by_matched_filters():
    ds = load_dataset("textures", split="test", n=500, seed=1)
    x = ds.x[:, 0] - ds.x[:, 0].mean(dim=(1, 2), keepdim=True)  # (N, 16, 16)
    grid = torch.arange(16.0)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    energy = []
    for o in TEXTURE_ORIENTATIONS_DEG:
        for c in TEXTURE_CYCLES:
            o_rad = math.radians(o)
            w = 2 * math.pi * c / 16 * (cols * math.cos(o_rad) + rows * math.sin(o_rad))
            energy.append((x * w.cos()).sum((1, 2)) ** 2 + (x * w.sin()).sum((1, 2)) ** 2)
    pred = torch.stack(energy, dim=1).argmax(dim=1)  # quadrature-pair energy per class
    assert float((pred == ds.y).float().mean()) > 0.95


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("digits_tone", {"contrast": 1.5}, r"contrast must lie in \[0.0, 1.0\], got 1.5"),
        ("digits_tone", {"sigma": -1}, r"sigma must be a number of pixels"),
        ("textures", {"n": 0}, "n must be a positive int, got 0"),
        ("textures", {"noise": -0.1}, "noise must lie in"),
    ],
)
def test_bad_options_rejected(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **kwargs)
    with pytest.raises(TypeError, match=f"dataset '{name}' got unexpected option"):
        load_dataset(name, bogus=1)
