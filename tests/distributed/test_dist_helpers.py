"""The distributed helpers without a process group: no-ops, clear errors, shard layout."""

from __future__ import annotations

import pytest
import torch

from netprism.core import dist
from netprism.core.subspace import StreamingCovariance
from netprism.train import TrainConfig, fit
from netprism.train.distributed import launched_by_torchrun, local_batch_size


def test_helpers_are_identities_without_a_group() -> None:
    t = torch.arange(6.0).reshape(3, 2)
    assert dist.rank_world() == (0, 1)
    assert torch.equal(dist.all_reduce_sum(t), t)
    assert torch.equal(dist.gather_rows(t), t)
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]
    cov = StreamingCovariance().update(t)
    assert cov.all_reduce().n == 3


def test_block_range_covers_every_sample_once_in_whole_batches() -> None:
    for n in (1, 7, 37, 64):
        for world in (2, 3):
            spans = [dist.block_range(n, 8, r, world) for r in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            assert all(start % 8 == 0 or start == stop for start, stop in spans)


def test_local_batch_names_the_bad_values() -> None:
    assert local_batch_size(64, 4) == 16
    with pytest.raises(ValueError, match="batch_size=10 must be divisible by the world size 3"):
        local_batch_size(10, 3)


def test_distributed_true_without_a_group_is_refused() -> None:
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with pytest.raises(RuntimeError, match="distributed=True needs"):
        fit(torch.nn.Linear(3, 2), (x, y), TrainConfig(epochs=1, progress=False), distributed=True)


def test_torchrun_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched_by_torchrun()
    with dist.local():
        assert dist.in_local() and dist.rank_world() == (0, 1)
