"""2 gloo ranks (``torch.multiprocessing`` spawn) against one process: DDP ``fit``, the
sharded curvature lens, the all-reduced covariance and Feldman-Zhang across ranks.

One spawn runs the whole scenario of ``ddp_workers.compute`` (spawning costs seconds on 2
cores); each test checks one part of it.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
import ddp_workers  # noqa: E402

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(fn: object, work: Path) -> None:
    """Run ``fn(rank, WORLD, port, work)`` on 2 gloo ranks; a hang fails after 120 s."""
    import time

    ctx = mp.start_processes(
        fn, args=(WORLD, free_port(), str(work)), nprocs=WORLD, join=False, start_method="spawn"
    )
    start = time.monotonic()
    while not ctx.join(timeout=5):
        if time.monotonic() - start > 120.0:
            for p in ctx.processes:
                p.kill()
            pytest.fail("distributed workers did not finish within 120 s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("ddp")
    _spawn(ddp_workers.worker, work)
    single_dir = tmp_path_factory.mktemp("single")
    return {
        "ranks": [torch.load(work / f"rank{r}.pt", weights_only=True) for r in range(WORLD)],
        "single": ddp_workers.compute(single_dir),
    }


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_ddp_fit_matches_single_process(runs: dict) -> None:
    single, ranks = runs["single"], runs["ranks"]
    for out in ranks:
        assert _max_diff(out["weights"], single["weights"]) < 1e-5
        assert len(out["history"]) == len(single["history"]) == 3
        for got, want in zip(out["history"], single["history"]):
            assert set(got) == set(want)
            for key in want:
                # finite-difference curvature (h = 1e-3) amplifies float reduction-order noise
                rel = 1e-4 if key.startswith("curvature") else 1e-5
                assert got[key] == pytest.approx(want[key], rel=rel, abs=1e-6), key
    assert _max_diff(single["unclipped_weights"], single["weights"]) > 1e-3  # clipping acted
    # every rank returns the same history (metrics are computed from gathered batches)
    assert ranks[0]["history"] == ranks[1]["history"]


def test_callbacks_see_the_single_process_batches(runs: dict) -> None:
    single = runs["single"]
    for out in runs["ranks"]:
        assert torch.equal(out["batch_index"], single["batch_index"])
        torch.testing.assert_close(out["batch_loss"], single["batch_loss"], rtol=1e-5, atol=1e-6)


def test_ddp_fit_on_a_shuffled_dataloader_keeps_records_at_their_samples(runs: dict) -> None:
    single = runs["single"]
    n_batches = -(-ddp_workers.N_FIT // ddp_workers.BATCH)
    assert len(single["loader_index"]) == 2 * ddp_workers.N_FIT  # 2 epochs, every sample
    for out in runs["ranks"]:
        assert torch.equal(out["loader_index"], single["loader_index"])
        assert not torch.equal(
            single["loader_index"][: ddp_workers.N_FIT].sort().values,
            single["loader_index"][: ddp_workers.N_FIT],
        )  # shuffled
        torch.testing.assert_close(out["loader_loss"], single["loader_loss"], rtol=1e-5, atol=1e-6)
        assert _max_diff(out["loader_weights"], single["loader_weights"]) < 1e-5
        torch.testing.assert_close(
            out["loader_tracker"], single["loader_tracker"], rtol=1e-4, atol=1e-6
        )
        torch.testing.assert_close(
            out["loader_dyn_loss"], single["loader_dyn_loss"], rtol=1e-5, atol=1e-6
        )
    assert n_batches == 7


def test_distributed_evaluate_and_resume(runs: dict) -> None:
    single = runs["single"]
    for out in runs["ranks"]:
        assert out["evaluate"]["n"] == single["evaluate"]["n"] == ddp_workers.N_VAL
        assert out["evaluate"]["accuracy"] == single["evaluate"]["accuracy"]
        assert out["evaluate"]["loss"] == pytest.approx(single["evaluate"]["loss"], rel=1e-5)
        assert out["resumed_from"] == single["resumed_from"] == 2
        assert _max_diff(out["resumed_weights"], single["resumed_weights"]) < 1e-5
        # rank 0 alone wrote the checkpoints: same files as the single-process run
        assert out["ckpt_files"] == single["ckpt_files"]


def test_curvature_scores_equal_sample_by_sample(runs: dict) -> None:
    single = runs["single"]["curvature"]  # (3, 37): 37 is odd, 5 batches of 8 over 2 ranks
    for out in runs["ranks"]:
        assert out["curvature"].shape == single.shape
        torch.testing.assert_close(out["curvature"], single, rtol=0, atol=0)
        # the tracker inside DDP training scores the (nearly identical) trained weights
        torch.testing.assert_close(out["tracker"], runs["single"]["tracker"], rtol=1e-3, atol=1e-4)


def test_all_reduced_covariance_equals_one_pass(runs: dict) -> None:
    n, cov, second = runs["single"]["cov"]
    for out in runs["ranks"]:
        got_n, got_cov, got_second = out["cov"]
        assert got_n == n == 41
        torch.testing.assert_close(got_cov, cov, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got_second, second, rtol=1e-12, atol=1e-12)
        assert out["cov_empty"][0] == 41
        torch.testing.assert_close(out["cov_empty"][1], runs["single"]["cov_empty"][1])


def test_feldman_zhang_across_ranks_equals_single_process(runs: dict) -> None:
    mem, correct, masks = runs["single"]["fz"]
    for out in runs["ranks"]:
        got_mem, got_correct, got_masks = out["fz"]
        assert torch.equal(got_masks, masks)
        assert torch.equal(got_correct, correct)
        torch.testing.assert_close(got_mem, mem, equal_nan=True, rtol=0, atol=0)


def test_misuse_and_rank0_failures_fail_on_every_rank(tmp_path: Path) -> None:
    _spawn(ddp_workers.fault_worker, tmp_path)
    outs = [torch.load(tmp_path / f"faults{r}.pt", weights_only=True) for r in range(WORLD)]
    for out in outs:
        assert "checkpoint_dir is set on ranks [0] but not on ranks [1]" in out["mismatch"]
        assert "already all-reduced" in out["cov_twice"]
    assert "No space left on device" in outs[0]["save"]
    assert "rank 0 could not save a checkpoint" in outs[1]["save"]
