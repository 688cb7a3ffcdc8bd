"""Majority-vote tie rule, ensemble-attack directions (A-GD invariance to loss scaling,
D-AG domination) and the TREND design selection."""

import numpy as np
import pytest
import torch
from torch import nn

from netprism.robustness.ensemble import (
    HardVoteEnsemble,
    design_robust_ensemble,
    ensemble_direction,
    ensemble_pgd,
    majority_vote,
    member_gradients,
    select_ensemble,
)


def test_majority_vote_clear_majority():
    preds = torch.tensor([[0, 1, 2], [0, 1, 3], [5, 1, 3]])  # (M=3, N=3)
    assert majority_vote(preds, 6).tolist() == [0, 1, 3]


def test_full_disagreement_picks_a_random_member_seeded():
    preds = torch.tensor([[0] * 200, [1] * 200, [2] * 200])  # no two members agree
    out = majority_vote(preds, 3, seed=0)
    assert torch.equal(out, majority_vote(preds, 3, seed=0))  # seeded
    counts = torch.bincount(out, minlength=3)
    assert (counts > 30).all()  # each member is picked, roughly uniformly
    assert not torch.equal(out, majority_vote(preds, 3, seed=1))


def test_tie_between_top_classes_picks_a_tied_class():
    preds = torch.tensor([[0] * 100, [0] * 100, [1] * 100, [1] * 100, [2] * 100])  # 2-2-1
    out = majority_vote(preds, 3, seed=0)
    assert set(out.tolist()) == {0, 1}  # never the single vote for class 2


def test_majority_vote_errors():
    with pytest.raises(ValueError, match=r"\(M, N\)"):
        majority_vote(torch.zeros(3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        majority_vote(torch.tensor([[0, 3]]), 3)


@pytest.fixture(scope="module")
def members():
    torch.manual_seed(0)
    ms = [
        nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)) for _ in range(3)
    ]
    x = torch.rand(50, 1, 4, 4)
    y = torch.randint(0, 4, (50,))
    return ms, x, y


def test_agd_step_unchanged_when_one_member_loss_is_scaled(members):
    ms, x, y = members
    for i in range(3):
        scales = [1e3 if j == i else 1.0 for j in range(3)]
        for c in (1e3, 0.37):
            s = [c if j == i else 1.0 for j in range(3)]
            g0 = member_gradients(ms, x, y)
            g1 = member_gradients(ms, x, y, loss_scales=s)
            assert torch.equal(
                ensemble_direction(g0, "sign_avg"), ensemble_direction(g1, "sign_avg")
            )
            assert torch.equal(
                ensemble_direction(g0, "sign_all"), ensemble_direction(g1, "sign_all")
            )
        a = ensemble_pgd(ms, x, y, eps=0.1, mode="sign_avg", steps=5)
        b = ensemble_pgd(ms, x, y, eps=0.1, mode="sign_avg", steps=5, loss_scales=scales)
        assert torch.equal(a, b)


def test_dag_is_dominated_by_the_scaled_member(members):
    ms, x, y = members
    g = member_gradients(ms, x, y, loss_scales=[1e3, 1.0, 1.0])
    solo = member_gradients(ms[:1], x, y)[0].sign()
    agree = float((ensemble_direction(g, "avg") == solo).float().mean())
    assert agree >= 0.99


def test_unanimous_direction_zero_where_members_disagree():
    g = torch.tensor([[[1.0, 2.0, -1.0]], [[3.0, -1.0, -2.0]]])  # (M=2, N=1, D=3)
    assert ensemble_direction(g, "sign_all").tolist() == [[1.0, 0.0, -1.0]]
    with pytest.raises(ValueError, match="mode must be"):
        ensemble_direction(g, "max")


def test_hard_vote_ensemble_predicts_by_vote(members):
    ms, x, _ = members
    ens = HardVoteEnsemble([ms[0], ms[0], ms[1]], 4)
    with torch.no_grad():
        ref = ms[0](x).argmax(1)
    assert torch.equal(ens.predict(x), ref)
    assert ens(x).sum(1).eq(3).all()


def test_select_ensemble_lowest_mutual_transfer():
    tm = np.array([[1, 0.9, 0.2, 0.3], [0.9, 1, 0.8, 0.7], [0.2, 0.8, 1, 0.1], [0.3, 0.7, 0.1, 1]])
    assert select_ensemble(tm, 3) == [0, 2, 3]
    assert select_ensemble(tm, 2, include=[1]) == [1, 3]
    with pytest.raises(ValueError, match="size must be"):
        select_ensemble(tm, 5)
    with pytest.raises(ValueError, match="square"):
        select_ensemble(tm[:2], 2)


def test_design_robust_ensemble_avoids_a_duplicated_member():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    twin = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    twin.load_state_dict(a.state_dict())  # transfers perfectly (TM = 1) with a
    other = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(80, 1, 4, 4)
    with torch.no_grad():
        y = a(x).argmax(1)
    pool = {"a": a, "twin": twin, "other": other}
    ens, names, result = design_robust_ensemble(pool, x, y, size=2, include=["a"])
    assert names == ["a", "other"] and len(ens.members) == 2
    assert result.pair("a", "twin") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the pool"):
        design_robust_ensemble(pool, x, y, include=["vgg"])
