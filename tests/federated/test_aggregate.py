"""Aggregation math on hand-made updates, and screening of malformed updates."""

import logging

import pytest
import torch

from netprism.federated.aggregate import (
    aggregate,
    coordinate_median,
    screen_updates,
    trimmed_mean,
    update_problem,
    weighted_average,
)

U = [torch.tensor([1.0, 2.0, 0.0]), torch.tensor([3.0, -2.0, 6.0]), torch.tensor([5.0, 0.0, 0.0])]


def test_weighted_average_by_hand():
    # (1*1 + 2*3 + 1*5) / 4 = 3; (2 - 4 + 0) / 4 = -0.5; (0 + 12 + 0) / 4 = 3
    out = weighted_average(U, [1, 2, 1])
    assert torch.allclose(out, torch.tensor([3.0, -0.5, 3.0]))
    assert torch.allclose(weighted_average(U, [1, 1, 1]), torch.tensor([3.0, 0.0, 2.0]))


def test_median_and_trimmed_mean_by_hand():
    assert torch.equal(coordinate_median(U), torch.tensor([3.0, 0.0, 0.0]))
    ups = [torch.tensor([v, -v]) for v in (1.0, 2.0, 3.0, 4.0, 1000.0)]
    assert torch.allclose(trimmed_mean(ups, trim=0.2), torch.tensor([3.0, -3.0]))
    assert torch.allclose(trimmed_mean(ups, trim=0.0), torch.tensor([202.0, -202.0]))


def test_robust_aggregators_resist_a_sign_flipping_client():
    honest = [torch.tensor([1.0, 1.0]) + 0.1 * i for i in range(4)]
    flipped = -10.0 * honest[0]
    ups = [*honest, flipped]
    mean = aggregate(ups, [1] * 5, "mean")
    assert (mean < 0).all()  # the attacker wins the plain mean
    for method in ("median", "trimmed_mean"):
        out = aggregate(ups, [1] * 5, method)
        assert (out > 1.0).all() and (out < 1.4).all(), method


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="non-negative"):
        weighted_average(U, [1, -1, 1])
    with pytest.raises(ValueError, match="one length"):
        weighted_average([torch.zeros(2), torch.zeros(3)], [1, 1])
    with pytest.raises(ValueError, match="at least one"):
        coordinate_median([])
    with pytest.raises(ValueError, match=r"trim must lie in \[0, 0.5\)"):
        trimmed_mean(U, trim=0.5)
    with pytest.raises(ValueError, match="aggregator must be one of"):
        aggregate(U, [1, 1, 1], "krum")


def test_malformed_updates_are_rejected_with_a_logged_reason(caplog):
    good = torch.ones(3)
    ups = [
        good,
        torch.ones(4),
        torch.tensor([1.0, float("inf"), 0.0]),
        torch.tensor([1.0, float("nan"), 0.0]),
        torch.full((3,), 1e9),
        "not an update",
        -good,
    ]
    with caplog.at_level(logging.WARNING, logger="netprism.federated.aggregate"):
        s = screen_updates(ups, [1] * len(ups), 3, max_norm=100.0)
    assert s.kept == [0, 6]
    assert set(s.rejected) == {1, 2, 3, 4, 5}
    assert "wrong shape" in s.rejected[1] and "non-finite" in s.rejected[2]
    assert "non-finite" in s.rejected[3] and "exceeds max_norm" in s.rejected[4]
    assert "not a tensor" in s.rejected[5]
    assert sum("rejected the update of client" in r.message for r in caplog.records) == 5
    assert update_problem(good, 3, 100.0) is None
