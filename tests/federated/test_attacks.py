"""Analytic inversion recovers inputs exactly; IG/DLG and the quality measures behave."""

import math

import torch

from netprism.federated.attacks import (
    analytic_fc_inversion,
    best_match_mse,
    dlg,
    inverting_gradients,
    per_truth_best,
    psnr_from_mse,
    reconstruction_quality,
)
from netprism.federated.gradients import flat_params, params_from_flat, weighted_gradient
from netprism.models import create_model


def _setup():
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,))
    return model, flat_params(model)


def test_analytic_inversion_recovers_a_single_input_exactly():
    model, w = _setup()
    x, y = torch.rand(1, 1, 8, 8), torch.tensor([3])
    g = params_from_flat(model, weighted_gradient(model, w, x, y))
    cands = analytic_fc_inversion(g["fc1.weight"], g["fc1.bias"])
    assert cands.shape[1] == 64 and len(cands) >= 1
    assert torch.allclose(cands[0], x.reshape(-1), atol=1e-5)
    assert per_truth_best(cands, x.reshape(1, -1))["mse"] < 1e-10


def test_analytic_inversion_of_a_batch_gives_affine_mixtures_of_its_samples():
    model, w = _setup()
    x, y = torch.rand(4, 1, 8, 8).double(), torch.tensor([0, 1, 2, 3])
    g = params_from_flat(model.double(), weighted_gradient(model, w.double(), x, y))
    cands = analytic_fc_inversion(g["fc1.weight"], g["fc1.bias"])  # (H', 64)
    X = x.reshape(4, -1)
    # Row j is sum_i c_ij x_i / sum_i c_ij: solve for the coefficients and check both.
    coef = torch.linalg.lstsq(X.T, cands.T).solution.T  # (H', 4)
    assert torch.allclose(coef @ X, cands, atol=1e-8)
    assert torch.allclose(coef.sum(1), torch.ones(len(cands), dtype=X.dtype), atol=1e-8)


def test_inverting_gradients_and_dlg_beat_random_guessing():
    model, w = _setup()
    x, y = torch.rand(1, 1, 8, 8), torch.tensor([5])
    target = weighted_gradient(model, w, x, y)
    kw = dict(batch_size=1, input_shape=(1, 8, 8), num_classes=10, seed=1)
    start = reconstruction_quality(
        torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(1)), x
    )
    ig = reconstruction_quality(inverting_gradients(model, w, target, steps=200, **kw), x)
    dl = reconstruction_quality(dlg(model, w, target, steps=10, **kw), x)
    assert ig["mse"] < start["mse"] and dl["mse"] < start["mse"]


def test_quality_measures():
    truth = torch.stack([torch.zeros(4), torch.ones(4)])
    recon = torch.stack([torch.full((4,), 0.9), torch.full((4,), 0.1)])
    assert torch.allclose(best_match_mse(recon, truth), torch.tensor([0.01, 0.01]))
    assert psnr_from_mse(0.01) == 20.0 and psnr_from_mse(0.0) == math.inf
