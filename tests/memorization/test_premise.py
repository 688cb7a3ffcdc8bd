"""The one call warns, naming the numbers, when the network has not fit the labels its
detector trusts (curvature's premise), and stays quiet when it has."""

import dataclasses
import warnings

import pytest
import torch

from netprism.core.metrics import auroc
from netprism.data import load_dataset, with_label_noise
from netprism.memorization import default_config, memorization_scores
from netprism.memorization.premise import MemorizationPremiseWarning, check_premise
from netprism.models import create_model


def _run(epochs, hidden=(256, 256)):
    ds = load_dataset("digits")
    noisy, flipped = with_label_noise(ds, 0.05, seed=0)
    factory = lambda: create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=hidden)  # noqa: E731
    cfg = dataclasses.replace(default_config(epochs, seed=0, device="cpu"), progress=False)
    every = max(1, epochs // 5)
    scores = memorization_scores(
        factory, noisy, cfg, n_probes=2, every=every, methods=("curvature", "aum")
    )
    return flipped, scores


def test_an_under_trained_run_warns_with_the_numbers():
    pattern = r"classifies \d+\.\d% .* fewer than the \d+\.\d% that 'aum' estimates"
    with pytest.warns(MemorizationPremiseWarning, match=pattern):
        flipped, scores = _run(epochs=3)
    assert auroc(flipped, scores["curvature"]) < 0.8  # the warning was deserved
    with pytest.warns(MemorizationPremiseWarning):  # a narrower net, 60 epochs: not yet
        flipped, scores = _run(epochs=60, hidden=(256,))
    assert auroc(flipped, scores["curvature"]) < 0.95  # not a false alarm by the grid's bar


def test_a_run_that_fit_its_data_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemorizationPremiseWarning)
        flipped, scores = _run(epochs=60)
    assert auroc(flipped, scores["curvature"]) > 0.9


def test_check_premise_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match=r"must both be \(N,\), got \(3,\) and \(4,\)"):
        check_premise(torch.ones(3, dtype=torch.bool), torch.zeros(4), "aum")
    with pytest.raises(ValueError, match="no finite value"):
        check_premise(torch.ones(2, dtype=torch.bool), torch.full((2,), float("nan")), "aum")
    nan_left_out = torch.tensor([0.0, 0.0, 5.0, float("nan")])
    check = check_premise(torch.tensor([True, True, True, False]), nan_left_out, "aum")
    assert check.holds and check.train_accuracy == 1.0  # the never-drawn sample is left out
