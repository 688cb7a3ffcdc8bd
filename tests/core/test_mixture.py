"""The two-component mixture: planted components recovered, agreement with scikit-learn."""

import pytest
import torch

from netprism.core.mixture import fit_two_component_mixture


def _planted(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = 1.0 + 0.2 * torch.randn(7000, generator=gen, dtype=torch.float64)
    high = 4.0 + 0.5 * torch.randn(3000, generator=gen, dtype=torch.float64)
    return torch.cat([low, high])


def test_planted_components_recovered_in_original_units():
    fit = fit_two_component_mixture(_planted())
    assert fit.converged
    assert torch.allclose(fit.weights, torch.tensor([0.7, 0.3]).double(), atol=0.01)
    assert torch.allclose(fit.means, torch.tensor([1.0, 4.0]).double(), atol=0.03)
    assert torch.allclose(fit.variances.sqrt(), torch.tensor([0.2, 0.5]).double(), atol=0.02)
    assert ((fit.posterior_high > 0.5).sum() - 3000).abs() < 30


def test_matches_scikit_learn_gaussian_mixture():
    mixture = pytest.importorskip("sklearn.mixture")
    x = _planted(1)
    ours = fit_two_component_mixture(x, var_floor=1e-12)
    z = ((x - x.min()) / (x.max() - x.min())).numpy().reshape(-1, 1)
    ref = mixture.GaussianMixture(2, tol=1e-10, reg_covar=1e-12, random_state=0).fit(z)
    order = ref.means_.flatten().argsort()
    span = float(x.max() - x.min())
    ref_means = torch.as_tensor(ref.means_.flatten()[order]) * span + float(x.min())
    assert torch.allclose(ours.means, ref_means, atol=1e-4)
    assert torch.allclose(ours.weights, torch.as_tensor(ref.weights_[order]), atol=1e-4)
    ref_post = torch.as_tensor(ref.predict_proba(z)[:, order[1]])
    assert (ours.posterior_high - ref_post).abs().max() < 1e-3


def test_constant_and_bad_input():
    fit = fit_two_component_mixture(torch.full((4,), 2.0))
    assert fit.posterior_high.tolist() == [0.0] * 4 and fit.means.tolist() == [2.0, 2.0]
    for bad in (torch.tensor([1.0]), torch.tensor([1.0, float("inf")])):
        with pytest.raises(ValueError, match="finite values"):
            fit_two_component_mixture(bad)
