import pytest
import torch
from torch import nn

from netprism.compression.crossbar import crossbar_levels, tile_weights
from netprism.compression.dub import (
    apply_masks,
    column_hoyer,
    columns_nonzero,
    fit_dub,
    hoyer,
    hoyer_variance,
    layer_weights,
    levels_keep,
    magnitude_masks,
    masked_finetune,
    one_sided_gate,
    snap_masks,
    snap_to_sparsity,
)
from netprism.train import TrainConfig


@pytest.mark.parametrize("k", [1, 3, 7, 16])
def test_hoyer_equals_count_of_equal_nonzeros(k):
    g = torch.Generator().manual_seed(k)
    x = torch.zeros(32)
    idx = torch.randperm(32, generator=g)[:k]
    x[idx] = 2.5 * torch.where(torch.rand(k, generator=g) < 0.5, -1.0, 1.0)
    assert float(hoyer(x)) == pytest.approx(k, rel=1e-6)


def test_hoyer_scale_invariant_bounded_and_finite_on_zeros():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 40, generator=g)
    h = hoyer(x)
    assert torch.allclose(hoyer(7.0 * x), h, rtol=1e-5)
    assert torch.allclose(hoyer(-0.1 * x), h, rtol=1e-4)  # up to the 1e-6 in the denominator
    assert bool((h >= 1.0).all()) and bool((h <= 40.0).all())
    zero = hoyer(torch.zeros(40))
    assert torch.isfinite(zero) and float(zero) == 0.0
    z = torch.zeros(40, requires_grad=True)
    hoyer(z).backward()
    assert torch.isfinite(z.grad).all()


def test_column_hoyer_matches_a_per_crossbar_loop():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(20, 3, 3, 3, generator=g)  # (C_out 20, fan-in 27) -> 2 x 2 tiles at 16
    h, real = column_hoyer(w, 16)
    flat = w.reshape(20, 27)
    for t, (r0, c0) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        for c in range(16):
            if c0 + c < 20:
                assert bool(real[t, c])
                expected = hoyer(flat[c0 + c, r0 : r0 + 16])
                assert float(h[t, c]) == pytest.approx(float(expected), rel=1e-6)
            else:
                assert not bool(real[t, c])


def test_regularizer_is_zero_when_columns_share_hoyer():
    w = torch.zeros(16, 16)
    for c in range(16):  # every column: 4 nonzeros of magnitude 0.3, different rows and signs
        rows = torch.tensor([(c + 3 * j) % 16 for j in range(4)])
        w[c, rows] = 0.3 * (-1) ** c
    w.requires_grad_(True)
    reg = hoyer_variance([w], 16)
    assert float(reg.detach()) == pytest.approx(0.0, abs=1e-8)
    reg.backward()
    assert float(w.grad.abs().max()) == pytest.approx(0.0, abs=1e-6)


def _mixed_density() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 8, generator=g)  # 8 columns of one 8x8 crossbar
    w[:4, 4:] = 0.0  # columns 0-3 hold 4 nonzeros (low H), columns 4-7 are dense (high H)
    return w


def test_gate_passes_gradient_only_to_above_mean_columns():
    w = _mixed_density().requires_grad_(True)
    h, _ = column_hoyer(w, 8)
    above = (h[0] > h[0].mean()).detach()
    assert 0 < int(above.sum()) < 8
    hoyer_variance([w], 8, gate=True).backward()
    has_grad = w.grad.abs().sum(dim=1) > 0  # per output channel = per column
    assert torch.equal(has_grad, above)
    # without the gate the below-mean columns are pushed too
    w2 = _mixed_density().requires_grad_(True)
    hoyer_variance([w2], 8, gate=False).backward()
    assert bool((w2.grad.abs().sum(dim=1) > 0).all())
    # one SGD step lowers H of the above-mean columns and leaves the others untouched
    with torch.no_grad():
        stepped = w - 1e-3 * w.grad
    h_new, _ = column_hoyer(stepped, 8)
    assert bool((h_new[0][above] < h[0][above]).all())
    assert torch.equal(h_new[0][~above], h[0][~above].detach())


def test_one_sided_gate_is_identity_forward_and_clamps_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = one_sided_gate(x)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([2.0, -1.0, -3.0])).sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 0.0]


@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.875])
def test_snap_gives_identical_column_counts_per_crossbar(sparsity):
    g = torch.Generator().manual_seed(3)
    weights = {
        "conv": torch.randn(24, 4, 2, 2, generator=g),  # fan-in 16, a partial column tile
        "fc": torch.randn(32, 64, generator=g) * torch.rand(32, 1, generator=g),
    }
    snap = snap_to_sparsity(weights, 16, sparsity)
    assert snap.sparsity == pytest.approx(sparsity, abs=0.03)
    for name, w in weights.items():
        pruned = w * snap.masks[name]
        counts = columns_nonzero(pruned, 16)  # (n_tiles, T)
        real = tile_weights(torch.ones_like(w), 16).sum(dim=1) > 0
        keep = levels_keep(snap.levels[name], 16)  # rows * 2^-k
        for t in range(len(counts)):
            assert bool((counts[t][real[t]] == keep[t]).all()), (name, t)
        assert torch.equal(crossbar_levels(pruned, 16)[0], snap.levels[name])


def test_snap_midpoint_rule_forces_or_loosens():
    w = torch.full((2, 16), 0.01)  # 2 columns of one 16x16 crossbar
    w[0, :5], w[1, :2] = 1.0, 1.0  # densest: 5 of 16 -> x = 0.69 >= 0.625 -> level 2 (keep 4)
    masks, levels = snap_masks({"w": w}, 16, 0.1)
    assert levels["w"].tolist() == [2] and masks["w"].sum(dim=1).tolist() == [4, 4]
    w[0, :7] = 1.0  # 7 of 16 -> x = 0.56 < 0.625 -> loosen to level 1 (keep 8)
    masks, levels = snap_masks({"w": w}, 16, 0.1)
    assert levels["w"].tolist() == [1] and masks["w"].sum(dim=1).tolist() == [8, 8]
    assert bool(masks["w"][0, :7].all())  # the largest weights survive
    masks, levels = snap_masks({"w": w}, 16, 2.0)  # nothing above the threshold
    assert levels["w"].tolist() == [-1] and int(masks["w"].sum()) == 0


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.875])
def test_magnitude_pruning_reaches_requested_sparsity(scope, sparsity):
    g = torch.Generator().manual_seed(4)
    weights = {"a": torch.randn(64, 32, generator=g), "b": 3 * torch.randn(16, 8, 3, generator=g)}
    masks = magnitude_masks(weights, sparsity, scope=scope)
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert 1 - kept / total == pytest.approx(sparsity, abs=1 / total)
    if scope == "layer":
        for m in masks.values():
            assert 1 - float(m.float().mean()) == pytest.approx(sparsity, abs=1 / m.numel())
    flat = torch.cat([w.abs().reshape(-1) for w in weights.values()])
    keep = torch.cat([m.reshape(-1) for m in masks.values()])
    if scope == "global":
        assert float(flat[keep].min()) >= float(flat[~keep].max())


def _reg(model):
    return float(hoyer_variance([w.detach() for w in layer_weights(model).values()], 8))


def test_masked_finetune_keeps_pruned_weights_at_zero_and_fit_dub_lowers_variance():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 16, generator=g), torch.randint(0, 3, (64,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    cfg = TrainConfig(epochs=3, lr=1e-2, optimizer="adam", weight_decay=0.0, progress=False)
    before = _reg(model)
    hist = fit_dub(model, (x, y), cfg, size=8, lam=1.0).history
    after = _reg(model)
    assert len(hist) == 3 and after < before
    masks = magnitude_masks(layer_weights(model), 0.75)
    masked_finetune(model, masks, (x, y), cfg)
    for name, w in layer_weights(model).items():
        assert float(w.detach()[~masks[name]].abs().max()) == 0.0
    apply_masks(model, masks)  # idempotent


def test_bad_arguments_raise():
    w = {"a": torch.randn(4, 4)}
    with pytest.raises(ValueError, match=r"sparsity must lie in \[0.0, 1.0\)"):
        magnitude_masks(w, 1.5)
    with pytest.raises(ValueError, match="scope must be one of"):
        magnitude_masks(w, 0.5, scope="row")
    with pytest.raises(ValueError, match="crossbar size must be"):
        snap_to_sparsity(w, 1, 0.5)
    with pytest.raises(ValueError, match="does not have"):
        apply_masks(nn.Linear(4, 4), {"nope": torch.ones(4, 4, dtype=torch.bool)})
