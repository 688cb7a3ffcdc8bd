"""What each of the 2 gloo ranks computes in tests/distributed (run by ``mp.spawn``).

Every rank runs the same script on the same data and saves what it got to
``out/rank{r}.pt``; the tests compare those with a single-process run in the parent.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

N_FIT, N_VAL, N_CURV, BATCH = 53, 21, 37, 8  # 53 = 6 full batches + 5 (padded to 6)


def data() -> dict[str, torch.Tensor]:
    """Synthetic 3-class data with planted structure (same on every rank)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N_FIT + N_VAL + N_CURV, 5, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    rows = torch.randn(41, 6, generator=gen) + 2.0
    return {"x": x, "y": y, "rows": rows}


def make_mlp() -> torch.nn.Module:
    """A small MLP; Tanh keeps the curvature smooth."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def train_config(**kw: Any) -> Any:
    from netprism.train import TrainConfig

    base = dict(
        epochs=3,
        batch_size=BATCH,
        lr=0.05,
        optimizer="sgd",
        scheduler="cosine",
        max_grad_norm=0.05,  # small enough to clip: the all-reduce must come before it
        device="cpu",
        progress=False,
        seed=3,
    )
    return TrainConfig(**{**base, **kw})


class StopAfter:
    """Ends a fit after ``n`` epochs, as a kill between epochs would."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, ctx: Any, metrics: dict[str, Any]) -> None:
        ctx.stop = ctx.epoch + 1 >= self.n


class BatchRecorder:
    """Records each step's dataset indices and per-sample losses."""

    def __init__(self) -> None:
        self.index: list[torch.Tensor] = []
        self.loss: list[torch.Tensor] = []

    def on_batch_end(self, ctx: Any, batch: Any) -> None:
        self.index.append(batch.index.clone())
        self.loss.append(batch.loss.detach().cpu().clone())


def compute(work_dir: Path) -> dict[str, Any]:
    """The whole scenario; distributed when a process group is up, else single-process."""
    from netprism.core.curvature import CurvatureTracker, input_curvature
    from netprism.core.subspace import StreamingCovariance
    from netprism.memorization.feldman_zhang import feldman_zhang_scores
    from netprism.train import evaluate, fit

    d = data()
    x, y = d["x"], d["y"]
    xf, yf = x[:N_FIT], y[:N_FIT]
    xv, yv = x[N_FIT : N_FIT + N_VAL], y[N_FIT : N_FIT + N_VAL]
    xc, yc = x[N_FIT + N_VAL :], y[N_FIT + N_VAL :]
    out: dict[str, Any] = {}

    model, tracker, rec = make_mlp(), CurvatureTracker(n_probes=2, batch_size=8), BatchRecorder()
    ckpt = work_dir / "ckpt"
    # a 4-epoch run stopped after 3 epochs, then resumed with the same config (a checkpoint
    # only resumes the run it belongs to: same epochs, lr, seed, ...)
    cfg = train_config(checkpoint_dir=str(ckpt), epochs=4)
    res = fit(model, (xf, yf), cfg, val=(xv, yv), callbacks=[tracker, rec, StopAfter(3)])
    out["history"] = res.history
    out["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
    out["tracker"] = tracker.scores_.norm.clone()
    out["batch_index"] = torch.cat(rec.index)
    out["batch_loss"] = torch.cat(rec.loss)
    out["evaluate"] = evaluate(model, (xv, yv), batch_size=8)
    resumed_cfg = dataclasses.replace(cfg, resume=True)
    res2 = fit(model, (xf, yf), resumed_cfg, val=(xv, yv), callbacks=[tracker])
    out["resumed_from"] = res2.resumed_from
    out["resumed_weights"] = {k: v.clone() for k, v in model.state_dict().items()}
    out["ckpt_files"] = sorted(p.name for p in ckpt.iterdir()) if ckpt.exists() else []
    if not dist.is_initialized():  # the same fit without clipping, to prove clipping acts
        unclipped = make_mlp()
        fit(unclipped, (xf, yf), dataclasses.replace(cfg, checkpoint_dir=None, max_grad_norm=None))
        out["unclipped_weights"] = unclipped.state_dict()

    # the user's own shuffled DataLoader: rank 0's plan is shared, records keyed by index
    from netprism.memorization import TrainingDynamics

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xf, yf), batch_size=BATCH, shuffle=True,
        generator=torch.Generator().manual_seed(7),
    )  # fmt: skip
    lrec, ltracker, ldyn = BatchRecorder(), CurvatureTracker(n_probes=2, batch_size=8), None
    ldyn = TrainingDynamics(batch_size=16)
    lmodel = make_mlp()
    fit(lmodel, loader, train_config(epochs=2), callbacks=[lrec, ltracker, ldyn])
    out["loader_index"] = torch.cat(lrec.index)
    out["loader_loss"] = torch.cat(lrec.loss)
    out["loader_tracker"] = ltracker.scores_.norm.clone()
    out["loader_dyn_loss"] = ldyn.loss_history_.clone()
    out["loader_weights"] = {k: v.clone() for k, v in lmodel.state_dict().items()}

    scored = make_mlp()
    s = input_curvature(scored, xc, yc, n_probes=3, seed=5, batch_size=8)
    out["curvature"] = torch.stack([s.norm, s.sq_norm, s.trace])  # (3, N_CURV)

    rows = d["rows"]
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    cov = StreamingCovariance()
    cov.update(rows[:29] if rank == 0 else rows[29:])  # uneven shards
    cov_empty = StreamingCovariance()  # rank 1 holds no rows at all
    if rank == 0:
        cov_empty.update(rows)
    if world > 1:
        cov.all_reduce()
        cov_empty.all_reduce()
    else:
        cov = StreamingCovariance().update(rows)
        cov_empty = StreamingCovariance().update(rows)
    out["cov"] = (cov.n, cov.covariance(centered=True), cov.second_moment)
    out["cov_empty"] = (cov_empty.n, cov_empty.covariance(centered=True))

    fz_cfg = train_config(epochs=2, checkpoint_dir=None, max_grad_norm=None)
    fz = feldman_zhang_scores(make_mlp, (xf, yf), n_models=5, config=fz_cfg, seed=0, progress=False)
    out["fz"] = (fz.mem, fz.correct, fz.masks)
    return out


def worker(rank: int, world: int, port: int, work_dir: str) -> None:
    """One rank: join the gloo group (fails after 60 s instead of hanging), compute, save."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        out = compute(Path(work_dir))
        torch.save(out, Path(work_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def faults(work_dir: Path) -> dict[str, str]:
    """Misuse and failures under 2 ranks; each must fail on every rank, never hang."""
    from unittest import mock

    from netprism.core.subspace import StreamingCovariance
    from netprism.train import fit

    d = data()
    xf, yf = d["x"][:N_FIT], d["y"][:N_FIT]
    rank = dist.get_rank()
    out: dict[str, str] = {}
    # 1. only rank 0 was given a checkpoint folder
    own = str(work_dir / "only0") if rank == 0 else None
    try:
        fit(make_mlp(), (xf, yf), train_config(epochs=1, checkpoint_dir=own))
    except ValueError as err:
        out["mismatch"] = str(err)
    # 2. rank 0's save fails (disk full): every rank raises, the others not by a lost peer
    full = OSError(28, "No space left on device")
    with mock.patch("netprism.train.resume.save_checkpoint", side_effect=full):
        try:
            fit(make_mlp(), (xf, yf), train_config(epochs=1, checkpoint_dir=str(work_dir / "s")))
        except OSError as err:
            out["save"] = str(err)
    # 3. a covariance all-reduced twice
    cov = StreamingCovariance().update(d["rows"]).all_reduce()
    try:
        cov.all_reduce()
    except RuntimeError as err:
        out["cov_twice"] = str(err)
    return out


def fault_worker(rank: int, world: int, port: int, work_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        torch.save(faults(Path(work_dir)), Path(work_dir) / f"faults{rank}.pt")
        # both ranks leave their last (failing) collectives before gloo is torn down: a rank
        # destroying the group while the other is still inside one aborted under load
        dist.barrier()
    finally:
        dist.destroy_process_group()
