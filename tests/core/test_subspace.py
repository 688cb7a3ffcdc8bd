import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netprism.core.basis import (
    SubspaceEstimator,
    incremental_basis,
    principal_angles,
    residual_energy,
)
from netprism.core.subspace import (
    StreamingCovariance,
    Subspace,
    energy_rank,
    subspace_from_matrix,
)
from netprism.core.validation import NotFittedError
from netprism.data.embedded import make_lowrank

TOL = 1e-10


def _rows(n=120, d=6, seed=0, shift=0.5):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) + shift


def _orthonormal(d, k, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=torch.float64)).Q


# --- StreamingCovariance ---------------------------------------------------------------


def test_streaming_over_batches_equals_one_shot():
    x = _rows()
    cov = StreamingCovariance()
    for batch in x.split(17):
        cov.update(batch)
    assert cov.n == 120 and cov.dim == 6
    torch.testing.assert_close(cov.second_moment, x.T @ x, atol=TOL, rtol=0)
    torch.testing.assert_close(cov.covariance(), x.T @ x / 120, atol=TOL, rtol=0)
    torch.testing.assert_close(cov.mean, x.mean(0), atol=TOL, rtol=0)
    torch.testing.assert_close(cov.covariance(centered=True), torch.cov(x.T), atol=TOL, rtol=0)
    np.testing.assert_allclose(cov.covariance(centered=True).numpy(), np.cov(x.numpy().T))


def test_float32_rows_are_accumulated_in_float64():
    x = _rows().float()
    cov = StreamingCovariance(dim=6).update(x)
    assert cov.second_moment.dtype == torch.float64
    x64 = x.double()
    torch.testing.assert_close(cov.second_moment, x64.T @ x64, atol=TOL, rtol=0)


def test_merging_two_shards_equals_one_pass():
    x = _rows()
    one = StreamingCovariance().update(x)
    a = StreamingCovariance().update(x[:50])
    b = StreamingCovariance().update(x[50:])
    merged = a.merge(b)
    assert merged is a and merged.n == one.n
    torch.testing.assert_close(merged.second_moment, one.second_moment, atol=TOL, rtol=0)
    torch.testing.assert_close(merged.mean, one.mean, atol=TOL, rtol=0)
    # merging an empty accumulator (either side) changes nothing
    empty = StreamingCovariance()
    torch.testing.assert_close(empty.merge(one).second_moment, one.second_moment)
    assert one.merge(StreamingCovariance()).n == 120


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=4))
def test_merge_over_random_shard_splits_is_order_free(cuts):
    x = _rows(n=60, d=4, seed=1)
    bounds = [0, *sorted(cuts), 60]
    shards = [StreamingCovariance(dim=4).update(x[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
    left = StreamingCovariance()
    for shard in shards:
        left.merge(shard)
    right = StreamingCovariance()
    for shard in reversed(shards):
        right.merge(shard)
    full = StreamingCovariance().update(x)
    for acc in (left, right):
        assert acc.n == 60
        torch.testing.assert_close(acc.second_moment, full.second_moment, atol=TOL, rtol=0)
        torch.testing.assert_close(acc.mean, full.mean, atol=TOL, rtol=0)


def test_state_dict_round_trip_and_sum_of_states_is_merge():
    x = _rows()
    a, b = StreamingCovariance().update(x[:40]), StreamingCovariance().update(x[40:])
    summed = {k: a.state_dict()[k] + b.state_dict()[k] for k in ("n", "sum", "second_moment")}
    restored = StreamingCovariance().load_state_dict(summed)  # what an all-reduce would give
    full = StreamingCovariance().update(x)
    assert restored.n == 120
    torch.testing.assert_close(restored.covariance(centered=True), full.covariance(centered=True))
    state = StreamingCovariance().state_dict()
    assert state["sum"].shape == (0,) and int(state["n"]) == 0
    with pytest.raises(ValueError, match="width D=3"):
        StreamingCovariance(dim=6).load_state_dict(
            StreamingCovariance(3).update(x[:, :3]).state_dict()
        )
    with pytest.raises(ValueError, match="missing"):
        StreamingCovariance().load_state_dict({"n": torch.tensor(1)})


def test_streaming_covariance_bad_input_errors():
    cov = StreamingCovariance().update(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"width D=4, got shape \(3, 5\)"):
        cov.update(torch.zeros(3, 5))
    bad = torch.zeros(2, 4)
    bad[1, 2] = math.inf
    with pytest.raises(ValueError, match="rows must be finite"):
        cov.update(bad)
    with pytest.raises(ValueError, match=r"2-D \(N, D\)"):
        cov.update(torch.zeros(4))
    for accessor in ("mean", "second_moment"):
        with pytest.raises(ValueError, match=r"covariance of nothing.*n=0"):
            getattr(StreamingCovariance(dim=4), accessor)
    with pytest.raises(ValueError, match="covariance of nothing"):
        StreamingCovariance().covariance()
    with pytest.raises(ValueError, match="at least 2 rows"):
        StreamingCovariance().update(torch.ones(1, 2)).covariance(centered=True)
    with pytest.raises(ValueError, match="cannot merge"):
        cov.merge(StreamingCovariance().update(torch.zeros(1, 2)))


# --- energy_rank ---------------------------------------------------------------------


def test_energy_rank_recovers_planted_rank_8():
    x, basis = make_lowrank(400, 64, 8, noise=1e-4)
    sub = StreamingCovariance().update(x).to_subspace()
    assert energy_rank(sub.spectrum, 0.999, rule="reach") == 8
    assert sub.at_energy(0.999).rank == 8
    angles = principal_angles(sub.at_energy(0.999).basis, basis.double())
    assert float(angles.max()) < 1e-3


def test_energy_rank_rules_on_a_hand_made_spectrum():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])  # cumulative ratios 0.4, 0.7, 0.9, 1.0
    assert energy_rank(s, 0.75, rule="reach") == 3
    assert energy_rank(s, 0.75, rule="below") == 2
    # exactly on the boundary (7/10 == 0.7 in float64): "reach" counts it as reached,
    # "below" drops the component that lands on it; below == reach - 1 always.
    assert energy_rank(s, 0.7, rule="reach") == 2
    assert energy_rank(s, 0.7, rule="below") == 1
    assert energy_rank(s, 1.0) == 4 and energy_rank(s, 1.0, rule="below") == 3
    assert energy_rank(s, 0.3) == 1 and energy_rank(s, 0.3, rule="below") == 0
    assert energy_rank(s.flip(0), 0.75) == 3  # sorted internally
    assert energy_rank(s.sqrt(), 0.75, squared=False) == 3  # singular values


def test_energy_rank_edge_cases():
    assert energy_rank(torch.zeros(5), 0.9) == 0
    assert energy_rank(torch.zeros(0), 0.9) == 0
    assert energy_rank(torch.tensor([2.0, 0.0, 0.0]), 1.0) == 1  # zero-energy tail dropped
    with pytest.raises(ValueError, match="nonnegative"):
        energy_rank(torch.tensor([1.0, -1.0]), 0.9)
    with pytest.raises(ValueError, match="rule must be 'reach' or 'below'"):
        energy_rank(torch.ones(3), 0.9, rule="above")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, math.nan, True, "0.9"])
def test_threshold_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\]"):
        energy_rank(torch.ones(3), bad)
    sub = subspace_from_matrix(torch.eye(3))
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\]"):
        sub.at_energy(bad)
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\]"):
        incremental_basis(torch.zeros(3, 0), torch.eye(3), bad)
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 1\]"):
        SubspaceEstimator(threshold=bad).fit(torch.eye(3))


# --- Subspace ------------------------------------------------------------------------


def test_projection_is_idempotent_and_residual_orthogonal():
    x, _ = make_lowrank(200, 12, 4, noise=0.05, seed=2)
    sub = subspace_from_matrix(x, threshold=0.9)
    x64 = x.double()
    once = sub.project(x64)
    torch.testing.assert_close(sub.project(once), once, atol=TOL, rtol=0)
    torch.testing.assert_close(sub.basis.T @ sub.basis, torch.eye(sub.rank, dtype=torch.float64))
    assert float((sub.residual(x64) @ sub.basis).abs().max()) < 1e-10
    proj = sub.projector()
    torch.testing.assert_close(proj @ proj, proj, atol=TOL, rtol=0)
    torch.testing.assert_close(proj, proj.T)
    assert sub.project(x).dtype == torch.float32  # projection in the input's dtype


def test_subspace_truncate_and_explained_energy():
    sub = StreamingCovariance().update(_rows(d=5)).to_subspace()
    assert sub.rank == sub.dim == 5
    assert float(sub.explained_energy[-1]) == pytest.approx(1.0)
    assert bool((sub.spectrum[:-1] >= sub.spectrum[1:]).all())
    small = sub.truncate(2)
    assert small.rank == 2 and small.total_energy == sub.total_energy
    assert small.at_energy(1.0).rank == 2  # cannot reach: keeps what it has
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 5\]"):
        sub.truncate(6)
    with pytest.raises(ValueError, match="spectrum must have shape"):
        Subspace(torch.eye(3), torch.ones(2), 2.0)
    with pytest.raises(ValueError, match="last dimension 5"):
        sub.project(torch.zeros(2, 4))


def test_svd_path_equals_covariance_path():
    x, _ = make_lowrank(80, 10, 5, noise=0.01, decay=0.7, seed=3)
    for centered in (False, True):
        direct = subspace_from_matrix(x, centered=centered, threshold=0.99)
        streamed = StreamingCovariance()
        for batch in x.split(30):
            streamed.update(batch)
        via_cov = streamed.to_subspace(centered=centered, threshold=0.99)
        assert direct.rank == via_cov.rank
        torch.testing.assert_close(direct.projector(), via_cov.projector(), atol=1e-9, rtol=0)
        torch.testing.assert_close(direct.spectrum, via_cov.spectrum, atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(direct.basis, via_cov.basis, atol=1e-7, rtol=0)  # same signs
        assert direct.total_energy == pytest.approx(via_cov.total_energy)
    columns = subspace_from_matrix(x.T, rows_are_samples=False, threshold=0.99)
    torch.testing.assert_close(
        columns.projector(), subspace_from_matrix(x, threshold=0.99).projector()
    )


# --- principal angles ----------------------------------------------------------------


def test_principal_angles_same_orthogonal_and_known():
    a = _orthonormal(8, 3)
    mixed = a @ torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 3.0]]).double()
    assert float(principal_angles(a, mixed).max()) < 1e-7
    e = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(
        principal_angles(e[:, :2], e[:, 2:]), torch.full((2,), math.pi / 2, dtype=torch.float64)
    )
    t = 1e-9  # small angles keep their precision (arcsin path)
    tilted = torch.tensor([[math.cos(t)], [math.sin(t)], [0.0], [0.0]], dtype=torch.float64)
    assert float(principal_angles(e[:, :1], tilted)[0]) == pytest.approx(t, rel=1e-6)
    angles = principal_angles(e[:, :1], e[:, :3])
    assert angles.shape == (1,) and float(angles[0]) == 0.0
    with pytest.raises(ValueError, match="share D"):
        principal_angles(e[:, :1], torch.eye(3))


# --- GPM residual and incremental basis ----------------------------------------------


def test_residual_of_data_inside_the_basis_is_zero_and_adds_nothing():
    q = _orthonormal(20, 6)
    inside = torch.randn(50, 4, dtype=torch.float64) @ q[:, :4].T  # rows in span(q[:, :4])
    assert residual_energy(q[:, :4], inside) < 1e-20
    assert residual_energy(q[:, :4], torch.zeros(3, 20)) == 0.0
    new = incremental_basis(q[:, :4], inside, 1.0)
    assert new.shape == (20, 0)
    assert incremental_basis(q[:, :4].float(), inside.float(), 1.0).shape == (20, 0)


@pytest.mark.parametrize("reorthogonalize", [True, False])
def test_incremental_basis_finds_the_planted_missing_directions(reorthogonalize):
    q = _orthonormal(20, 6, seed=4)
    gen = torch.Generator().manual_seed(5)
    data = torch.randn(300, 6, generator=gen, dtype=torch.float64) @ q.T  # span(q), rank 6
    new = incremental_basis(q[:, :3], data, 0.999, reorthogonalize=reorthogonalize)
    assert new.shape == (20, 3)
    assert float(principal_angles(new, q[:, 3:]).max()) < 1e-6
    merged = torch.cat([q[:, :3], new], dim=1)
    torch.testing.assert_close(merged.T @ merged, torch.eye(6, dtype=torch.float64))
    first = incremental_basis(torch.zeros(20, 0), data.T, 0.999, rows_are_samples=False)
    assert float(principal_angles(first, q).max()) < 1e-6  # first task: (D, 0) old basis


def test_incremental_basis_uses_the_total_energy_denominator():
    # energies: 10 on e1 (already in memory), 5 on e2, 1 on e3; total 16
    r = torch.zeros(3, 4, dtype=torch.float64)
    r[0, 0], r[1, 1], r[2, 2] = math.sqrt(10.0), math.sqrt(5.0), 1.0
    old = torch.eye(4, dtype=torch.float64)[:, :1]
    # a = 10/16 = 0.625; + 5/16 -> 0.9375 >= 0.9: one column (a residual-energy
    # denominator would need both, 5/6 < 0.9)
    assert incremental_basis(old, r, 0.9).shape == (4, 1)
    assert incremental_basis(old, r, 0.95).shape == (4, 2)
    assert incremental_basis(old, r, 0.6).shape == (4, 0)
    assert residual_energy(old, r) == pytest.approx(6 / 16)


# --- estimator -----------------------------------------------------------------------


def test_estimator_fit_transform_round_trip():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(100, 3, generator=gen, dtype=torch.float64) @ _orthonormal(16, 3).T  # rank 3
    est = SubspaceEstimator(threshold=0.999)
    assert est.fit(x) is est
    assert est.n_components_ == 3 and est.basis_.shape == (16, 3) and est.mean_ is None
    z = est.transform(x)
    assert z.shape == (100, 3)
    torch.testing.assert_close(est.inverse_transform(z), x, atol=1e-10, rtol=0)
    batched = SubspaceEstimator(threshold=0.999).fit((b, None) for b in x.split(30))
    torch.testing.assert_close(batched.basis_, est.basis_, atol=1e-9, rtol=0)
    centered = SubspaceEstimator(threshold=0.999, centered=True).fit(x + 5.0)
    torch.testing.assert_close(centered.mean_, (x + 5.0).mean(0))
    back = centered.inverse_transform(centered.transform(x + 5.0))
    torch.testing.assert_close(back, x + 5.0, atol=1e-9, rtol=0)
    assert "threshold=0.999" in repr(est)


def test_estimator_use_before_fit_is_a_clear_error():
    est = SubspaceEstimator()
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        est.transform(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="not fitted yet"):
        est.inverse_transform(torch.zeros(2, 1))
    with pytest.raises(ValueError, match="covariance of nothing"):
        est.fit([])
    fitted = est.fit(torch.eye(3))
    with pytest.raises(ValueError, match="width D=3"):
        fitted.transform(torch.zeros(2, 4))
