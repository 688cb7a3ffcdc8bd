"""vit_tiny: per-layer Linear names, attention vs. a manual softmax, token counts, training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netprism.data import load_dataset
from netprism.models import create_model
from netprism.models.vit import ViT
from netprism.train import TrainConfig, evaluate, fit

K = 3


def _vit(shape: tuple[int, int, int] = (1, 8, 8), **kwargs: object) -> ViT:
    model = create_model("vit_tiny", input_shape=shape, num_classes=K, **kwargs)
    assert isinstance(model, ViT)
    return model


def test_every_projection_is_a_named_linear() -> None:
    depth = 3
    model = _vit(depth=depth, dim=32, heads=4, mlp_ratio=2.0)
    modules = dict(model.named_modules())
    for i in range(depth):
        for leaf in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.fc1", "mlp.fc2"):
            assert isinstance(modules[f"blocks.{i}.{leaf}"], nn.Linear), f"blocks.{i}.{leaf}"
        assert modules[f"blocks.{i}.mlp.fc1"].out_features == 64
    assert isinstance(modules["head"], nn.Linear) and modules["head"].out_features == K
    assert isinstance(modules["patch_embed"], nn.Conv2d)
    assert f"blocks.{depth}.attn.q" not in modules


def test_attention_matches_manual_softmax() -> None:
    torch.manual_seed(0)
    model = _vit(dim=32, heads=4, dropout=0.3).eval()  # dropout must be off in eval mode
    attn = model.blocks[1].attn
    B, T, D, nh = 2, model.config.num_tokens, 32, 4
    hs = D // nh
    x = torch.randn(B, T, D)
    with torch.no_grad():
        q, k, v = (lin(x).view(B, T, nh, hs).transpose(1, 2) for lin in (attn.q, attn.k, attn.v))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1)  # (B, nh, T, T)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(B, T, D))
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "patch_size"),
    [((1, 8, 8), 3), ((3, 32, 32), 5), ((1, 8, 12), 8), ((1, 10, 10), None)],
)
def test_patch_size_must_divide_image(shape: tuple[int, int, int], patch_size: int | None) -> None:
    with pytest.raises(ValueError, match="patch_size") as info:
        _vit(shape, patch_size=patch_size)
    assert str(shape) in str(info.value)


@pytest.mark.parametrize(
    ("shape", "patch_size", "default_p"),
    [((1, 8, 8), None, 2), ((1, 16, 16), None, 4), ((3, 32, 32), None, 4), ((3, 32, 16), 8, 8)],
)
def test_token_count(shape: tuple[int, int, int], patch_size: int | None, default_p: int) -> None:
    model = _vit(shape, patch_size=patch_size, dim=16, depth=1)
    _, H, W = shape
    T = (H // default_p) * (W // default_p) + 1
    assert model.config.patch_size == default_p and model.config.num_tokens == T
    assert model.pos_embed.shape == (1, T, 16)
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, *shape)).shape == (2, T, 16)


def test_dim_must_split_into_heads() -> None:
    with pytest.raises(ValueError, match="heads"):
        _vit(dim=30, heads=4)


def test_trains_on_digits() -> None:
    """15 Adam epochs on the 1,347 train digits; about 10 s on one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        train, test = load_dataset("digits"), load_dataset("digits", split="test")
        model = create_model("vit_tiny", input_shape=(1, 8, 8), num_classes=10)
        config = TrainConfig(epochs=15, lr=1e-3, optimizer="adam", progress=False, device="cpu")
        fit(model, train, config)
        assert evaluate(model, test, device="cpu")["accuracy"] > 0.85
    finally:
        torch.set_num_threads(threads)
