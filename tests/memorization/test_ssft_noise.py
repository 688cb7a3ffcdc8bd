"""Second-split forgetting recovers planted label noise; instance-dependent noise flips each
sample to the class a weak model confuses it with."""

import dataclasses

import pytest
import torch

from netprism.core.metrics import auroc
from netprism.data import load_dataset, with_label_noise
from netprism.memorization import default_config
from netprism.memorization.noise import instance_dependent_noise, weak_model_confusion
from netprism.memorization.ssft import second_split_forgetting, trailing_misses
from netprism.models import create_model


@pytest.fixture(scope="module")
def digits600():
    return load_dataset("digits").subset(range(600))


def test_ssft_recovers_planted_noise(digits600):
    noisy, flipped = with_label_noise(digits600, 0.1, seed=0)
    factory = lambda: create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(128,))  # noqa: E731
    cfg = dataclasses.replace(default_config(30, seed=0, device="cpu"), lr=3e-3, progress=False)
    scores = second_split_forgetting(factory, noisy, cfg, second_epochs=10, seed=1)
    assert scores.shape == (600,) and bool(torch.isfinite(scores).all())
    assert bool(((scores >= 0) & (scores <= 11)).all())
    assert auroc(flipped, scores) > 0.85  # mislabeled samples are forgotten first


def test_trailing_misses_closed_form_and_errors():
    correct = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 1]]).bool()
    assert trailing_misses(correct).tolist() == [1.0, 2.0, 3.0, 0.0]
    x, y = torch.randn(1, 3), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="at least 2 samples"):
        second_split_forgetting(lambda: torch.nn.Linear(3, 2), (x, y))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="second_epochs must be a positive int, got 0"):
        second_split_forgetting(lambda: torch.nn.Linear(3, 2), (x, y), second_epochs=0)


def test_instance_noise_follows_the_weak_models_confusion(digits600):
    noisy, flipped = instance_dependent_noise(digits600, 0.2, seed=3, device="cpu")
    confusion = weak_model_confusion(digits600, seed=3, device="cpu")
    other = confusion.clone()
    other[torch.arange(600), digits600.y] = -1.0
    assert torch.equal(noisy.y[flipped], other.argmax(dim=1)[flipped])
    assert torch.equal(noisy.extras["clean_y"], digits600.y)
    # the mistakes concentrate on confusable pairs, unlike symmetric noise
    sym, sym_flipped = with_label_noise(digits600, 0.2, seed=3)
    pairs = {(int(a), int(b)) for a, b in zip(digits600.y[flipped], noisy.y[flipped])}
    sym_pairs = {(int(a), int(b)) for a, b in zip(digits600.y[sym_flipped], sym.y[sym_flipped])}
    assert len(pairs) < len(sym_pairs)
