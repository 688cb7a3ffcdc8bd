"""The plain-PyTorch round loop: FedAvg learns, TOFU decodes exactly, bad clients survive."""

import pytest
import torch

from netprism.data import load_dataset
from netprism.data.transforms import partition_clients
from netprism.federated.rounds import EncoderConfig, run_rounds
from netprism.federated.tofu import fedavg_bytes, tofu_bytes
from netprism.models import create_model


@pytest.fixture(scope="module")
def setup():
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    clients = partition_clients(train, 4, seed=0)
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,))
    return model, clients, test


def test_fedavg_and_tofu_rounds_count_bytes_and_learn(setup):
    model, clients, test = setup
    fed = run_rounds(model, clients, test, schedule=["full"] * 3)
    assert fed.accuracy[-1] > 30.0  # chance is 10 %
    assert fed.uplink_bytes == [4 * fedavg_bytes(2410)] * 3
    tofu = run_rounds(
        model,
        clients,
        test,
        schedule=["tofu", "full"],
        encoder=EncoderConfig(8, 20, 0.1),
        downlink="tofu",
    )
    assert tofu.uplink_bytes == [4 * tofu_bytes(8, 64, 10), 4 * fedavg_bytes(2410)]
    assert tofu.downlink_bytes == [4 * tofu_bytes(8, 64, 10), 4 * fedavg_bytes(2410)]
    assert tofu.decode_errors[0] <= 1e-6 and len(tofu.cosines[0]) == 4


@pytest.mark.parametrize("fault", ["nan", "wrong_shape", "huge_norm"])
@pytest.mark.parametrize("kind", ["full", "tofu"])
def test_malformed_updates_are_rejected_and_the_round_completes(setup, fault, kind):
    model, clients, test = setup
    log = run_rounds(
        model,
        clients,
        test,
        schedule=[kind] * 2,
        behaviours=["honest", "honest", fault, "sign_flip"],
        aggregator="median",
        encoder=EncoderConfig(4, 5, 0.1),
    )
    assert len(log.accuracy) == 2
    for rejected in log.rejected:
        assert list(rejected) == [2], rejected


def test_bad_behaviour_names_raise(setup):
    model, clients, test = setup
    with pytest.raises(ValueError, match="behaviours must be 4 of"):
        run_rounds(model, clients, test, schedule=["full"], behaviours=["evil"] * 4)
    with pytest.raises(ValueError, match="downlink must be one of"):
        run_rounds(model, clients, test, schedule=["full"], downlink="zip")
