"""Every registered model: shapes, gradients, safetensors round trip, and clear errors.

The cases are generated from ``MODELS.names()`` after importing every area that registers
models (``netprism.list_models()`` does), so a newly registered model is tested without
touching this file; ``FAST_KWARGS`` only shrinks known models to keep the run fast.  Models
tagged with another ``task`` than classification (the byte LMs, ``task="language_model"``)
get the argument checks here and their shape checks in their area's tests.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import netprism
from netprism.models import MODEL_AREAS, MODELS, create_model
from netprism.models.alexnet import AlexNet
from netprism.models.vgg import CFGS, MaybeMaxPool2d

K = 3
IMAGE_SHAPES = [(1, 8, 8), (3, 32, 32)]
FLAT_SHAPES = [(40,)]

ALL_MODELS = netprism.list_models()  # imports the areas, so their models register

# Speed only: any model missing here is built with its defaults (see test_defaults_build).
FAST_KWARGS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": (32, 16)},
    "vgg": {"depth": 11, "width_mult": 0.125},
    "resnet18": {"width": 8},
    "hybrid_net": {"widths": (4, 8, 8, 8, 8)},
    "spiking_mlp": {"hidden": (16,)},
}


def _image_only(name: str) -> bool:
    return bool(MODELS.meta(name).get("image_only", False))


def _classifiers() -> list[str]:
    """Models mapping one sample of ``input_shape`` to ``num_classes`` logits."""
    return [n for n in MODELS.names() if MODELS.meta(n).get("task", "classifier") == "classifier"]


def _cases() -> list[tuple[str, tuple[int, ...]]]:
    cases = []
    for name in _classifiers():
        shapes = IMAGE_SHAPES + ([] if _image_only(name) else FLAT_SHAPES)
        cases += [(name, shape) for shape in shapes]
    return cases


def _build(name: str, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, input_shape=shape, num_classes=K, **FAST_KWARGS.get(name, {}))


CASES = pytest.mark.parametrize(("name", "shape"), _cases(), ids=lambda v: str(v))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@CASES
def test_forward_shape_and_finite(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, K)
    assert torch.isfinite(out).all()


@CASES
def test_backward_gives_finite_grads(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape).train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, *shape)), torch.arange(4) % K)
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: no gradient for {pname}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


@CASES
def test_safetensors_round_trip(name: str, shape: tuple[int, ...], tmp_path: Any) -> None:
    model = _build(name, shape, seed=0)
    model.train()(torch.randn(4, *shape))  # move batch-norm running stats off their init
    x = torch.randn(4, *shape)
    expected = model.eval()(x)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    clone = _build(name, shape, seed=1)
    clone.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
    with torch.no_grad():
        assert torch.equal(clone.eval()(x), expected.detach())


@pytest.mark.parametrize("name", _classifiers())
def test_defaults_build(name: str) -> None:
    """Defaults alone must work, so a model absent from FAST_KWARGS is still covered."""
    shape = (1, 8, 8)
    model = create_model(name, input_shape=shape, num_classes=K)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, *shape)).shape == (2, K)


def test_fast_kwargs_name_registered_models() -> None:
    assert set(FAST_KWARGS) <= set(MODELS.names())


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(KeyError) as info:
        create_model("no-such-net", input_shape=(1, 8, 8), num_classes=K)
    for name in MODELS.names():
        assert name in str(info.value)
    for area in MODEL_AREAS:  # and says where the models of the method areas come from
        assert area in str(info.value)


def test_areas_register_their_models() -> None:
    assert ALL_MODELS == MODELS.names()
    assert {"hybrid_net", "spiking_mlp", "byte_lm", "local_global_lm"} <= set(ALL_MODELS)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize(
    ("shape", "k"), [((), K), ((0, 8, 8), K), ((1, -8, 8), K), ((1, 8, 8), 1), ((1, 8, 8), 0)]
)
def test_bad_arguments_raise_value_error(name: str, shape: tuple[int, ...], k: int) -> None:
    with pytest.raises(ValueError):
        create_model(name, input_shape=shape, num_classes=k)


@pytest.mark.parametrize("name", MODELS.names())
def test_factory_checks_num_classes(name: str) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        MODELS.get(name)(input_shape=(1, 8, 8), num_classes=0)


@pytest.mark.parametrize("name", [n for n in _classifiers() if _image_only(n)])
@pytest.mark.parametrize("shape", [(40,), (2, 3, 8, 8)])
def test_image_only_models_reject_other_shapes(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\)") as info:
        create_model(name, input_shape=shape, num_classes=K)
    assert str(shape) in str(info.value)


# --- architecture invariants of the built-in models ---------------------------------------


def test_mlp_layer_names_and_dropout() -> None:
    model = create_model("mlp", input_shape=(40,), num_classes=K, hidden=(8, 4, 2), dropout=0.1)
    names = dict(model.named_children())
    assert [n for n in names if n.startswith("fc")] == ["fc1", "fc2", "fc3"]
    assert isinstance(names["head"], nn.Linear) and names["head"].in_features == 2
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 3
    linear = create_model("mlp", input_shape=(2, 5), num_classes=K, hidden=())
    assert [type(m) for m in linear.children()] == [nn.Flatten, nn.Linear]


def test_lenet_is_classic_on_32x32_and_padded_on_8x8() -> None:
    classic = create_model("lenet", input_shape=(1, 32, 32), num_classes=K)
    assert classic.conv1.padding == (0, 0) and classic.fc1.in_features == 16 * 5 * 5
    small = create_model("lenet", input_shape=(1, 8, 8), num_classes=K)
    assert small.conv1.padding == (2, 2) and small.fc1.in_features == 16 * 2 * 2
    with pytest.raises(ValueError, match="below 1x1"):
        create_model("lenet", input_shape=(1, 8, 8), num_classes=K, padding=0)


def test_alexnet_matches_gpm_on_32x32() -> None:
    model = create_model("alexnet", input_shape=(3, 32, 32), num_classes=K)
    assert isinstance(model, AlexNet)
    assert model.fc1.in_features == 256 * 2 * 2  # GPM: smid = 2
    convs = [model.conv1, model.conv2, model.conv3]
    assert [(c.out_channels, c.kernel_size[0], c.padding) for c in convs] == [
        (64, 4, (0, 0)),
        (128, 3, (0, 0)),
        (256, 2, (0, 0)),
    ]
    layers = [*convs, model.fc1, model.fc2, model.head]
    assert all(m.bias is None for m in layers)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 5 and not any(bn.track_running_stats for bn in bns)


@pytest.mark.parametrize("depth", sorted(CFGS))
def test_vgg_depth_counts_weight_layers(depth: int) -> None:
    model = create_model(
        "vgg", input_shape=(3, 8, 8), num_classes=K, depth=depth, width_mult=0.0625
    )
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert n_convs == depth - 3  # VGG-d counts d - 3 convs and 3 FC layers


def test_vgg_channels_override_and_pool_skips_unit_dims() -> None:
    widths = [3, 4, 5, 6, 7, 8, 9, 10]
    model = create_model("vgg", input_shape=(1, 8, 8), num_classes=K, depth=11, channels=widths)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == widths
    with pytest.raises(ValueError, match="8 widths"):
        create_model("vgg", input_shape=(1, 8, 8), num_classes=K, depth=11, channels=[4, 4])
    with pytest.raises(ValueError, match="depth"):
        create_model("vgg", input_shape=(1, 8, 8), num_classes=K, depth=12)
    pool = MaybeMaxPool2d()
    assert pool(torch.ones(1, 2, 1, 1)).shape == (1, 2, 1, 1)
    assert pool(torch.ones(1, 2, 1, 4)).shape == (1, 2, 1, 2)
    assert pool(torch.ones(1, 2, 5, 4)).shape == (1, 2, 2, 2)


def test_resnet18_cifar_stem_and_blocks() -> None:
    model = create_model("resnet18", input_shape=(5, 8, 8), num_classes=K, width=4)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.in_channels == 5
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and model.head.in_features == 4 * 8
