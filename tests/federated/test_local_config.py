"""A client's local training takes its recipe as a TrainConfig: ``local_config`` is the former
``LocalConfig`` default, wrong types and fields the loop sets itself are refused by name."""

import copy
import dataclasses

import pytest
import torch
from torch import nn

from netprism.data.base import DatasetInfo, TensorDataset
from netprism.federated.gradients import flat_params
from netprism.federated.rounds import check_local_config, local_config, local_update, run_rounds
from netprism.train import TrainConfig


def _data(n: int = 40) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    info = DatasetInfo("toy", ("a", "b", "c"), (4,), "test")
    return TensorDataset(torch.randn(n, 4, generator=gen), torch.arange(n) % 3, info)


def test_local_config_is_the_former_local_sgd_default():
    old = TrainConfig(
        epochs=1,
        batch_size=32,
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        optimizer="sgd",
        scheduler="none",
        progress=False,
    )
    assert local_config() == old
    assert check_local_config(None) == old
    assert local_config(epochs=3, lr=0.5, batch_size=8) == dataclasses.replace(
        old, epochs=3, lr=0.5, batch_size=8
    )


@pytest.mark.parametrize("bad", [{"epochs": 1}, (1, 0.1, 32), 0.1])
def test_a_config_that_is_not_a_train_config_is_refused(bad):
    model, data = nn.Linear(4, 3), _data()
    with pytest.raises(TypeError, match="local_update takes config as a netprism.train.Train"):
        local_update(model, flat_params(model), data, bad)
    with pytest.raises(TypeError, match="run_rounds takes config as a netprism.train.Train"):
        run_rounds(model, [data], data, schedule=["full"], config=bad)


@pytest.mark.parametrize(
    ("field", "value"), [("seed", 3), ("device", "cpu"), ("checkpoint_dir", "ckpt")]
)
def test_fields_the_loop_sets_itself_are_refused_by_name(field, value):
    model, data = nn.Linear(4, 3), _data()
    config = dataclasses.replace(local_config(), **{field: value})
    with pytest.raises(ValueError, match=rf"local_update cannot honour TrainConfig.{field}="):
        local_update(model, flat_params(model), data, config)


def test_the_rest_of_the_recipe_is_honoured():
    torch.manual_seed(0)
    model, data = nn.Linear(4, 3), _data()
    weights = flat_params(model)
    plain = local_update(copy.deepcopy(model), weights, data, local_config(epochs=2), seed=1)
    heavy = dataclasses.replace(local_config(epochs=2), momentum=0.9)
    moved = local_update(copy.deepcopy(model), weights, data, heavy, seed=1)
    assert not torch.equal(plain, moved)  # momentum is honoured
    default = local_update(copy.deepcopy(model), weights, data, seed=1)
    assert torch.equal(
        default, local_update(copy.deepcopy(model), weights, data, local_config(), seed=1)
    )


def test_the_flower_client_refuses_a_wrong_config():
    pytest.importorskip("flwr")
    from netprism.federated.flower import TOFUClient

    with pytest.raises(TypeError, match="TOFUClient takes config as a netprism.train.TrainConfig"):
        TOFUClient(nn.Linear(4, 3), _data(), config={"epochs": 1})  # type: ignore[arg-type]
    assert TOFUClient(nn.Linear(4, 3), _data()).config == local_config()
