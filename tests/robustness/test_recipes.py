"""The robustness recipes take their training part as a TrainConfig: the default recipe
functions equal the former defaults, a wrong ``config`` type is refused, and fields a recipe
cannot honour are refused by name."""

import dataclasses

import pytest
import torch
from torch import nn

from netprism.robustness.hierarchy import LabelTree
from netprism.robustness.hierarchy_train import (
    HierarchicalMLP,
    conditional_config,
    conditional_fit,
)
from netprism.robustness.ood import (
    VRMSettings,
    noise_mixup,
    train_mixup,
    train_plain,
    train_vrm,
    vrm_config,
)
from netprism.robustness.variants import VariantSpec, train_variant, variant_config
from netprism.train import TrainConfig


def test_conditional_config_is_the_former_conditional_fit_default():
    old = TrainConfig(
        epochs=30,
        batch_size=64,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-4,
        optimizer="sgd",
        scheduler="step",  # the recipe's 10x drops at 1/3 and 2/3
        seed=0,
        device="auto",
        progress=False,
    )
    assert conditional_config() == old
    assert conditional_config(epochs=5, seed=2, device="cpu") == dataclasses.replace(
        old, epochs=5, seed=2, device="cpu"
    )


def test_vrm_config_and_settings_are_the_former_mixup_config_defaults():
    assert vrm_config() == TrainConfig(
        epochs=30,
        batch_size=32,
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        scheduler="none",
        seed=0,
        device="auto",
        progress=False,
    )
    assert dataclasses.asdict(VRMSettings()) == {
        "alpha": 1.0,
        "noise_std": 1.0,
        "noise_alpha": 1.0,
        "aux_target": "hard",
        "aux_lambda_max": 0.5,
        "noise_fraction": 0.5,
        "clip": (0.0, 1.0),
    }


@pytest.mark.parametrize(
    ("optimizer", "lr", "weight_decay"), [("sgd", 0.05, 5e-4), ("adam", 1e-3, 0.0)]
)
def test_variant_config_is_the_former_train_variant_default(optimizer, lr, weight_decay):
    assert variant_config(optimizer) == TrainConfig(
        epochs=30,
        batch_size=32,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        seed=0,
        device="cpu",
        progress=False,
    )
    assert variant_config(optimizer, lr=0.2).lr == 0.2
    with pytest.raises(ValueError, match="optimizer must be one of"):
        variant_config("lbfgs")


def _tree_data():
    tree = LabelTree.from_children({"r": ["a", "b"], "a": ["a0", "a1"], "b": ["b0", "b1"]})
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 4
    return tree, 3.0 * torch.randn(4, 5, generator=gen)[y] + torch.randn(48, 5, generator=gen), y


class _Settings:  # the shape of the old MixupConfig: not a TrainConfig
    epochs = 1


@pytest.mark.parametrize("bad", [{"epochs": 1}, _Settings(), 3])
def test_a_config_that_is_not_a_train_config_is_refused(bad):
    tree, x, y = _tree_data()
    calls = [
        lambda: conditional_fit(HierarchicalMLP(5, (2, 4), hidden=(8,)), (x, y), tree, config=bad),
        lambda: train_plain(nn.Linear(5, 4), (x, y), bad),
        lambda: train_mixup(nn.Linear(5, 4), (x, y), bad),
        lambda: train_vrm(nn.Linear(5, 5), (x, y), bad),
        lambda: train_variant(VariantSpec(), (x[:, None], y), num_classes=4, config=bad),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="takes config as a netprism.train.TrainConfig"):
            call()


def test_vrm_settings_of_the_wrong_type_are_refused():
    x, y = torch.rand(8, 4), torch.arange(8) % 2
    with pytest.raises(TypeError, match="train_vrm takes settings as a VRMSettings"):
        train_vrm(nn.Linear(4, 3), (x, y), vrm_config(epochs=1), vrm_config())  # type: ignore[arg-type]


def test_fields_a_recipe_cannot_honour_are_refused_by_name(tmp_path):
    tree, x, y = _tree_data()
    smooth = TrainConfig(epochs=1, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"conditional_fit cannot honour TrainConfig.label_smooth"):
        conditional_fit(HierarchicalMLP(5, (2, 4), hidden=(8,)), (x, y), tree, config=smooth)
    ckpt = TrainConfig(epochs=1, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"train_vrm cannot honour TrainConfig.checkpoint_dir"):
        train_vrm(nn.Linear(5, 5), (x, y), ckpt)
    with pytest.raises(ValueError, match=r"train_plain cannot honour TrainConfig.label_smoothing"):
        train_plain(nn.Linear(5, 4), (x, y), smooth)
    with pytest.raises(ValueError, match="train_plain needs config.epochs >= 1, got 0"):
        train_plain(nn.Linear(5, 4), (x, y), TrainConfig(epochs=0))
    adam = variant_config("adam", epochs=1)
    with pytest.raises(ValueError, match="TrainConfig.optimizer='adam' differs from the spec"):
        train_variant(VariantSpec(), (x[:, None], y), num_classes=4, config=adam)


def test_conditional_fit_honours_the_scheduler():
    tree, x, y = _tree_data()
    histories = {}
    for scheduler in ("step", "cosine", "none"):
        torch.manual_seed(0)
        net = HierarchicalMLP(5, (2, 4), hidden=(8,))
        config = dataclasses.replace(
            conditional_config(epochs=4, batch_size=16, device="cpu"), scheduler=scheduler
        )
        histories[scheduler] = conditional_fit(net, (x, y), tree, config=config)
    assert histories["step"][:1] == histories["none"][:1]  # the first epoch: no drop yet
    assert len({tuple(h) for h in histories.values()}) == 3


def test_the_mixup_recipe_honours_its_optimizer():
    x, y = torch.rand(32, 4), torch.arange(32) % 2
    nets = []
    for config in (vrm_config(epochs=1, device="cpu"), TrainConfig(epochs=1, batch_size=32)):
        torch.manual_seed(0)
        nets.append(
            train_plain(nn.Linear(4, 2), (x, y), dataclasses.replace(config, progress=False))
        )
    assert not torch.equal(nets[0].weight, nets[1].weight)


def test_noise_mixup_takes_the_settings():
    gen = torch.Generator().manual_seed(0)
    xa, target = noise_mixup(torch.rand(6, 3), torch.arange(6) % 2, 2, VRMSettings(clip=None), gen)
    assert xa.shape == (6, 3) and target.shape == (6, 3)
