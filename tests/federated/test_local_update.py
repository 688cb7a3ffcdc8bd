"""local_update trains through the engine and reproduces the plain local-SGD loop bit for bit."""

import copy

import pytest
import torch
import torch.nn.functional as F

from netprism.data import load_dataset
from netprism.data.transforms import partition_clients
from netprism.federated.aggregate import screen_updates
from netprism.federated.gradients import flat_params, load_flat_params
from netprism.federated.rounds import accuracy_at, local_config, local_update
from netprism.models import create_model


def _reference_local_sgd(model, weights, data, local, seed):
    """The loop local_update replaced: one generator across epochs, fused mean CE."""
    load_flat_params(model, weights)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=local.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(local.epochs):
        order = torch.randperm(len(data), generator=gen)
        for batch in order.split(local.batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x[batch]), data.y[batch]).backward()
            opt.step()
    return flat_params(model) - weights


@pytest.fixture(scope="module")
def setup():
    train = load_dataset("digits")
    clients = partition_clients(train, 5, seed=0)
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,))
    return model, clients


@pytest.mark.parametrize("epochs", [1, 3])
def test_matches_the_plain_sgd_loop_bit_for_bit_and_leaves_the_global_rng_alone(setup, epochs):
    model, clients = setup
    weights = flat_params(model)
    local = local_config(epochs=epochs, lr=0.1, batch_size=32)
    for c, data in enumerate(clients[:2]):
        torch.manual_seed(123)
        want = _reference_local_sgd(copy.deepcopy(model), weights, data, local, seed=17 + c)
        after_reference = torch.rand(3)
        torch.manual_seed(123)
        got = local_update(copy.deepcopy(model), weights, data, local, seed=17 + c)
        assert torch.equal(got, want)
        assert torch.equal(
            torch.rand(3), after_reference
        )  # global stream neither reseeded nor drawn


def test_a_diverging_client_sends_a_nan_update_that_the_screen_rejects(setup):
    model, clients = setup
    weights = flat_params(model)
    update = local_update(copy.deepcopy(model), weights, clients[0], local_config(lr=1e30), seed=0)
    assert update.shape == weights.shape and bool(update.isnan().all())
    screened = screen_updates([update], [len(clients[0])], weights.numel(), 1e3)
    assert not screened.updates and 0 in dict(screened.rejected)


def test_explicit_device_matches_the_default(setup):
    model, clients = setup
    weights = flat_params(model)
    work = copy.deepcopy(model)
    a = local_update(work, weights, clients[1], seed=3)
    b = local_update(work, weights, clients[1], seed=3, device="cpu")
    assert torch.equal(a, b) and a.device == weights.device
    test = load_dataset("digits", split="test")
    assert accuracy_at(work, weights + a, test) == accuracy_at(
        work, weights + a, test, device="cpu"
    )
