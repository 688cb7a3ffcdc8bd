"""Transfer counts on a hand-built case, the eps-curve fit, the intended vs the released TM
formula, and invariants of the transferability matrix."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from netprism.robustness.transfer import (
    fit_transfer_curve,
    pgd_attack,
    saturating_curve,
    transfer_counts,
    transferability_matrix,
    transferability_metric,
)


def test_transfer_counts_hand_built():
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    src_clean = torch.tensor([0, 1, 2, 3, 4, 5, 0, 7])  # sample 6 wrong on the source
    tgt_clean = torch.tensor([0, 1, 2, 3, 4, 0, 6, 7])  # sample 5 wrong on the target
    src_adv = torch.tensor([1, 2, 3, 3, 4, 0, 0, 0])  # fools 0, 1, 2, (5, 6), 7
    tgt_adv = torch.tensor([1, 1, 3, 3, 0, 0, 6, 0])  # fools 0, 2, 4, 5, 7
    c = transfer_counts(y, src_clean, tgt_clean, src_adv, tgt_adv)
    # common = {0, 1, 2, 3, 4, 7}; source fooled among them = {0, 1, 2, 7};
    # also fool the target = {0, 2, 7} (4 fools only the target: not a transfer)
    assert (c.n_common, c.n_source, c.n_transfer) == (6, 4, 3)
    assert c.fraction == 3 / 6


def test_transfer_counts_shape_error():
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="y's shape"):
        transfer_counts(y, y, y, y, y[:3])


@pytest.mark.parametrize(("a", "b"), [(120.0, -9.0), (35.0, -20.0), (400.0, -3.0)])
def test_fit_recovers_synthetic_curve(a, b):
    eps = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    rng = np.random.default_rng(0)
    counts = saturating_curve(eps, a, b) * (1 + 0.01 * rng.standard_normal(len(eps)))
    a_hat, b_hat = fit_transfer_curve(eps, counts)
    assert a_hat == pytest.approx(a, rel=0.05)
    assert b_hat == pytest.approx(b, rel=0.05)


def test_fit_edge_cases():
    assert fit_transfer_curve([0.1, 0.2], [0, 0]) == (0.0, 0.0)
    a, b = fit_transfer_curve([0.1, 0.3], [50, 50])  # saturated at the first eps
    assert saturating_curve(0.1, a, b) == pytest.approx(50, rel=1e-3)
    with pytest.raises(ValueError, match=">= 2 matching"):
        fit_transfer_curve([0.1], [3])


def test_metric_is_the_intended_ratio_not_the_released_formula():
    fit_st, fit_ss, eps = (40.0, -10.0), (80.0, -5.0), 0.1
    n_st = 40 * (1 - math.exp(-1.0))
    n_ss = 80 * (1 - math.exp(-0.5))
    assert transferability_metric(fit_st, fit_ss, eps) == pytest.approx(n_st / n_ss)
    official = transferability_metric(fit_st, fit_ss, eps, formula="official")
    assert official == pytest.approx(n_st / 80 * (1 - math.exp(-0.5)))
    assert official != pytest.approx(n_st / n_ss)
    with pytest.raises(ValueError, match="formula"):
        transferability_metric(fit_st, fit_ss, eps, formula="paper")


def test_matrix_of_identical_models_is_all_ones():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    b = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    b.load_state_dict(a.state_dict())
    x = torch.rand(60, 1, 4, 4)
    with torch.no_grad():
        y = a(x).argmax(1)  # every sample correct on both
    other = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    res = transferability_matrix(
        {"a": a, "b": b, "c": other},
        x,
        y,
        eps=[0.05, 0.1, 0.2],
        eval_eps=0.1,
        attack=pgd_attack(steps=3),
    )
    assert res.tm.shape == (3, 3) and np.allclose(np.diag(res.tm), 1.0)
    assert res.pair("a", "b") == pytest.approx(1.0) and res.pair("b", "a") == pytest.approx(1.0)
    assert res.counts.shape == (3, 3, 3, 3)
    assert (res.counts[..., 2] <= res.counts[..., 1]).all()
    assert (res.counts[..., 1] <= res.counts[..., 0]).all()
    with pytest.raises(ValueError, match=">= 2 models"):
        transferability_matrix({"a": a}, x, y, eps=[0.1, 0.2], eval_eps=0.1)
