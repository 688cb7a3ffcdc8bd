import math

import pytest
import torch
from torch import nn

from netprism.compression.crossbar import (
    VGG11_CIFAR_CONV_SHAPES,
    ZERO_LEVEL,
    adc_bits,
    adc_energy_saving,
    base_adc_bits,
    count_crossbars,
    crossbar_levels,
    crossbar_report,
    level_histogram,
    levels_from_histogram,
    output_positions,
    tile_weights,
    untile,
)

OFFICIAL_HIST = (9, 57, 53, 25, 91, 213, 115, 1)  # VGG11 128x128 post-snap, 9-bit base


def test_vgg11_tile_counts_and_weights_are_exact():
    assert sum(math.prod(s) for s in VGG11_CIFAR_CONV_SHAPES) == 9_217_728
    counts = [count_crossbars(VGG11_CIFAR_CONV_SHAPES, t) for t in (32, 64, 128, 256)]
    assert counts == [9002, 2251, 564, 144]
    assert [base_adc_bits(t) for t in (32, 64, 128, 256)] == [7, 8, 9, 10]
    # tiling the actual tensors agrees with the shape arithmetic
    n = sum(len(tile_weights(torch.zeros(s), 128)) for s in VGG11_CIFAR_CONV_SHAPES)
    assert n == 564


def test_tiling_maps_one_output_channel_per_column_and_round_trips():
    w = torch.arange(3 * 2 * 3 * 3, dtype=torch.float32).reshape(3, 2, 3, 3) + 1  # fan-in 18
    tiles = tile_weights(w, 8)  # 3 row tiles x 1 column tile
    assert tiles.shape == (3, 8, 8)
    flat = w.reshape(3, 18)
    assert torch.equal(tiles[0, :, 1], flat[1, :8])  # column 1 = output channel 1's inputs
    assert torch.equal(tiles[2, :2, 2], flat[2, 16:])
    assert tiles[2, 2:].abs().sum() == 0 and tiles[:, :, 3:].abs().sum() == 0  # zero padding
    assert torch.equal(untile(tiles, w.shape), w)


def test_levels_count_padded_rows_as_zero_and_all_zero_crossbar():
    w = torch.zeros(2, 16)  # two columns, 16 inputs, 16x16 crossbar
    w[0, :3], w[1, :1] = 1.0, 1.0  # densest column holds 3 of 16 -> 3 <= 4 = 16 / 2^2
    assert crossbar_levels(w, 16)[0].tolist() == [2]
    w9 = torch.ones(4, 9)  # 9 real rows of 16: zero fraction 7/16 < 1/2 -> level 0
    assert crossbar_levels(w9, 16)[0].tolist() == [0]
    w8 = torch.ones(4, 8)  # 8 of 16 rows: exactly level 1
    levels, cols = crossbar_levels(w8, 16)
    assert levels.tolist() == [1] and cols.tolist() == [4]
    assert crossbar_levels(torch.zeros(4, 16), 16)[0].tolist() == [ZERO_LEVEL]
    assert crossbar_levels(w, 16, threshold=1.0)[0].tolist() == [ZERO_LEVEL]
    assert adc_bits(torch.tensor([0, 2, ZERO_LEVEL]), 6).tolist() == [6, 4, 0]


def test_energy_model_on_the_official_histogram():
    levels = levels_from_histogram(OFFICIAL_HIST)
    assert len(levels) == 564
    assert adc_energy_saving(levels, 9) == pytest.approx(8.29, abs=0.01)
    assert adc_energy_saving(levels, 9, model="linear") == pytest.approx(1.87, abs=0.01)
    # equal weights as explicit conversions, and a custom callable model
    ones = torch.ones(564)
    assert adc_energy_saving(levels, 9, conversions=ones) == adc_energy_saving(levels, 9)
    cube = adc_energy_saving(levels, 9, model=lambda b: b.double() ** 3)
    assert 1.87 < cube < 8.29


def test_energy_weights_by_conversions_and_zero_crossbars_cost_nothing():
    levels = torch.tensor([0, 3])
    # crossbar 0 (dense) dominates the conversions -> saving near 1
    heavy = adc_energy_saving(levels, 6, conversions=torch.tensor([1000.0, 1.0]))
    light = adc_energy_saving(levels, 6, conversions=torch.tensor([1.0, 1000.0]))
    assert 1.0 < heavy < 1.01 and light == pytest.approx(64 * 1001 / (64 + 8000))
    assert adc_energy_saving(torch.tensor([ZERO_LEVEL, 0]), 6) == pytest.approx(2.0)
    assert adc_energy_saving(torch.tensor([ZERO_LEVEL]), 6) == math.inf


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="crossbar size must be an int >= 2"):
        base_adc_bits(1)
    with pytest.raises(ValueError, match="energy model must be"):
        adc_energy_saving(torch.tensor([0]), 6, model="cubic")
    with pytest.raises(ValueError, match="conversions must be 2"):
        adc_energy_saving(torch.tensor([0, 1]), 6, conversions=torch.ones(3))
    with pytest.raises(ValueError, match="levels must lie in"):
        adc_bits(torch.tensor([7]), 6)
    with pytest.raises(ValueError, match="no Conv1d, Conv2d or Linear"):
        crossbar_report(nn.ReLU(), torch.zeros(1, 3), 16)


def test_report_conversions_follow_output_positions():
    net = nn.Sequential(
        nn.Conv2d(1, 20, 3, padding=1, bias=False),  # 8x8 out, fan-in 9, 20 channels
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(20 * 16, 10),
    )
    assert output_positions(net, torch.zeros(1, 1, 8, 8)) == {"0": 64, "3": 1}
    rep = crossbar_report(net, torch.zeros(1, 1, 8, 8), 16)
    # conv: 1 row tile x 2 column tiles (16 + 4 real columns); linear: 20 row tiles x 1
    assert rep.conversions[:2].tolist() == [64 * 16, 64 * 4]
    assert rep.conversions[2:].tolist() == [10.0] * 20
    assert rep.layer.tolist() == [0, 0] + [1] * 20
    assert rep.saving() == pytest.approx(1.0) and rep.sparsity == 0.0
    hist = level_histogram(rep.levels, 16)
    assert hist == {"zero": 0, "0": 22, "1": 0, "2": 0, "3": 0, "4": 0}
