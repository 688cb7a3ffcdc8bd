"""The training engine (``netprism.train.fit``) vs a plain PyTorch loop: speed, memory, scoring.

Every model in netprism is trained by :func:`netprism.train.fit`; this measures what the
engine costs over writing the loop by hand, each baseline in the same run.

1. **Throughput** (samples / s over several epochs, batch 256): ``fit`` on a ``DataLoader``
   vs a plain hand-written loop (forward, cross-entropy, ``zero_grad``, backward, ``step``, one
   ``loss.item()`` per step as users log) over the same architecture and initial weights, the
   same ``DataLoader`` settings (``shuffle=True``, ``num_workers=0``) and the same optimizer
   (SGD, lr 0.05, momentum 0.9, no weight decay, constant lr).  Also ``fit`` on the in-memory
   ``TensorDataset`` (its fast path: index slicing, no per-item collate) against the same plain
   ``DataLoader`` loop, and for LeNet a plain loop over index slices as a reference.  Cases:
   LeNet on the bundled 8x8 digits (1,347 samples) and a width-16 ResNet-18 on random 32x32x3
   images.  Each round runs every variant once (order reversed every other round, so drift
   hits all alike); the ratio is the median over rounds of the paired ``plain time / fit
   time`` in process CPU time (target >= 0.9; CPU time is what other jobs on a shared machine
   do not inflate -- ``num_workers=0`` and one thread keep all the work in this process), with
   the same ratio in wall-clock time and samples / s next to it.  In the warm-up (one epoch on
   two batches) the loaders are not shuffled, so ``fit`` and the plain loop see the same
   batches: their final weights are compared, a check that both do the same arithmetic.  A
   breakdown then times each piece of per-step work the engine adds (finiteness check,
   first-epoch label check, epoch metrics, the ``LoaderSource`` batch bookkeeping) in CPU
   microseconds per step, next to the plain step.
2. **Memory**: ``memorization_scores(model, DataLoader(ds, batch_size=256, shuffle=True),
   epochs=1, methods=("curvature", "loss"), n_probes=1)`` with a small conv net on a synthetic
   dataset generated in ``__getitem__`` (each 3x32x32 sample from a generator seeded by its
   index, label ``index % 10``; never materialised), at ``--mem-sizes`` samples (200,000 and
   20,000), each in a fresh subprocess.  The child first runs the same call on two batches
   (one-time costs: the first optimizer imports ``torch._dynamo``, ~130 MB), then resets its
   RSS high-water mark (``/proc/self/clear_refs``).  Reported: the peak RSS of the measured
   call (``VmHWM``), its growth over the RSS just before the call, wall time, and the bytes of
   the O(N) score arrays returned.  Target: ``peak(large) <= 1.2 x peak(small) +
   score arrays(large)``; the growth per extra sample is printed next to the score arrays' bytes
   per sample (what streaming must still hold).
3. **Curvature scoring**, streaming vs in memory: :func:`netprism.core.curvature.input_curvature`
   on tensors vs ``CurvatureTracker._score_epoch`` (the per-epoch scoring pass of ``fit``) over
   (a) the same tensors (``TensorSource``) and (b) a map-style ``Dataset`` read through a
   ``DataLoader`` (``LoaderSource``), with a context built like ``fit`` builds it.  Same
   model, probes (seed 0, epoch 0) and batch size 256; scores asserted equal bit for bit (a)
   and allclose (b).  Target: streaming / in-memory CPU time <= 1.1 (paired median over
   interleaved rounds; wall clock next to it); the time the streaming paths spend reading
   their batches (without the model) is printed too, a noise-free view of their own cost.

Threads default to 1 (``--threads``): both sides of every ratio do the same arithmetic, and on a
shared 2-core machine two OpenMP threads stall at barriers whenever the other core is busy
(10x swings per step were seen); pass ``--threads 2`` on an idle machine (CPU time then also
counts the OpenMP workers' spinning: read the wall-clock columns too).

Run::

    .venv/bin/python benchmarks/bench_engine.py            # ~4 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_engine.py --quick    # ~25 s
    .venv/bin/python benchmarks/bench_engine.py --threads 2 --mem-sizes 100000 10000
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rss import reset_peak_rss, vm_status  # benchmarks/rss.py
from torch import nn
from torch.utils.data import DataLoader, Dataset

from netprism.core.curvature import CurvatureTracker, input_curvature
from netprism.core.outputs import as_logits
from netprism.data import load_dataset
from netprism.models import create_model
from netprism.train import Batch, TrainConfig, TrainContext, fit, make_source
from netprism.train.data import parse_batch
from netprism.train.step import BatchChecks, train_step

FIT_TARGET = 0.9  # fit samples/s >= 0.9 x the plain loop
MEM_FACTOR = 1.2  # peak(large) <= 1.2 x peak(small) + score arrays
CURV_TARGET = 1.1  # streaming / in-memory time
BATCH = 256
LR, MOMENTUM = 0.05, 0.9
MB = 2**20
WORD = {True: "holds", False: "does NOT hold"}


# --------------------------------------------------------------------------- data and models


class OnTheFly(Dataset):
    """``n`` synthetic 3x32x32 images, each generated in ``__getitem__`` from a generator seeded
    by its index (never materialised); label ``index % 10``."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed
        self.gen = torch.Generator()  # reused (num_workers=0); re-seeded per item

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.gen.manual_seed(self.seed * 1_000_003 + int(i))
        return torch.randn(3, 32, 32, generator=self.gen), int(i) % 10


class MapDataset(Dataset):
    """A plain map-style dataset over tensors (not a TensorDataset: fit streams it)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def small_conv() -> nn.Module:
    """~1.5k parameters: cheap enough to train and score 200k samples on 2 cores."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


@dataclass
class Case:
    name: str
    template: nn.Module  # initial weights, deep-copied for every run
    train: Any  # what fit's fast path and the DataLoader get (a TensorDataset)
    x: torch.Tensor
    y: torch.Tensor
    epochs: int
    tensor_reference: bool  # also time a plain loop over index slices


def make_cases(args: argparse.Namespace) -> list[Case]:
    digits = load_dataset("digits")
    torch.manual_seed(0)
    lenet = create_model("lenet", input_shape=(1, 8, 8), num_classes=10)
    n = args.resnet_n
    xr = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    yr = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    resnet = create_model("resnet18", input_shape=(3, 32, 32), num_classes=10, width=16)
    return [
        Case(
            f"lenet / digits 8x8 (N = {len(digits)})",
            lenet,
            digits,
            digits.x,
            digits.y,
            args.lenet_epochs,
            True,
        ),
        Case(
            f"resnet18 w16 / random 32x32x3 (N = {n})",
            resnet,
            torch.utils.data.TensorDataset(xr, yr),
            xr,
            yr,
            args.resnet_epochs,
            False,
        ),
    ]


# --------------------------------------------------------------------------- 1. throughput


def plain_loop(model: nn.Module, loader: DataLoader, epochs: int) -> float:
    """The hand-written loop; returns the last epoch's mean loss."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    total, count = 0.0, 0
    for _ in range(epochs):
        total, count = 0.0, 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)  # the per-step log users write
            count += len(y)
    return total / count


def plain_slices(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """Plain loop over shuffled index slices of in-memory tensors (fit's fast path, by hand)."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    total, count = 0.0, 0
    for _ in range(epochs):
        total, count = 0.0, 0
        for idx in torch.randperm(len(y)).split(BATCH):
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            count += len(yb)
    return total / count


def fit_config(epochs: int) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=0.0,
        scheduler="none",
        progress=False,
        device="cpu",
        seed=0,
    )


def fit_loss(model: nn.Module, data: Any, epochs: int) -> float:
    return fit(model, data, fit_config(epochs)).final["loss"]


PLAIN, FIT_DL, FIT_TS, PLAIN_TS = (
    "plain loop (DataLoader)",
    "fit (same DataLoader)",
    "fit (in-memory TensorDataset, fast path)",
    "plain loop (index slices, reference)",
)


def throughput(case: Case, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Interleaved rounds of every variant; returns the results and whether fit >= 0.9x."""

    def loader(ds: Any, shuffle: bool = True) -> DataLoader:
        return DataLoader(ds, batch_size=BATCH, shuffle=shuffle, num_workers=0)

    def variants(
        ds: Any, x: torch.Tensor, y: torch.Tensor, epochs: int, shuffle: bool = True
    ) -> dict[str, Callable[[nn.Module], float]]:
        fns: dict[str, Callable[[nn.Module], float]] = {
            PLAIN: lambda m: plain_loop(m, loader(ds, shuffle), epochs),
            FIT_DL: lambda m: fit_loss(m, loader(ds, shuffle), epochs),
            FIT_TS: lambda m: fit_loss(m, ds, epochs),
        }
        if case.tensor_reference:
            fns[PLAIN_TS] = lambda m: plain_slices(m, x, y, epochs)
        return fns

    # Warm-up: one epoch of every variant on two batches, the loaders un-shuffled so that fit
    # and the plain loop see the same batches: their weights must then agree (same arithmetic).
    k = min(len(case.y), 2 * BATCH)
    warm_ds = torch.utils.data.TensorDataset(case.x[:k], case.y[:k])
    warm = {}
    for name, fn in variants(warm_ds, case.x[:k], case.y[:k], 1, shuffle=False).items():
        warm[name] = copy.deepcopy(case.template)
        fn(warm[name])
    same_weights = max(
        float((a - b).detach().abs().max())
        for a, b in zip(warm[PLAIN].parameters(), warm[FIT_DL].parameters())
    )
    fns = variants(case.train, case.x, case.y, case.epochs)
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    losses: dict[str, float] = {}
    for r in range(args.repeats):
        for name in list(fns) if r % 2 == 0 else list(reversed(fns)):
            model = copy.deepcopy(case.template)
            t0, c0 = time.perf_counter(), time.process_time()
            losses[name] = fns[name](model)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    n = len(case.y)
    steps = case.epochs * -(-n // BATCH)

    def ratios(ts: dict[str, list[float]]) -> dict[str, float]:
        return {k: statistics.median(p / t for p, t in zip(ts[PLAIN], ts[k])) for k in ts}

    paired, paired_cpu = ratios(times), ratios(cpu)
    ok = paired_cpu[FIT_DL] >= FIT_TARGET and paired_cpu[FIT_TS] >= FIT_TARGET
    res = {
        "times": times,
        "med": {name: statistics.median(t) for name, t in times.items()},
        "paired": paired,
        "paired_cpu": paired_cpu,
        "losses": losses,
        "samples": n * case.epochs,
        "steps": steps,
        "same_weights": same_weights,
        "overhead_us": statistics.median(
            (f - p) / steps * 1e6 for p, f in zip(times[PLAIN], times[FIT_DL])
        ),
        "overhead_cpu_us": statistics.median(
            (f - p) / steps * 1e6 for p, f in zip(cpu[PLAIN], cpu[FIT_DL])
        ),
    }
    return res, ok


def report_throughput(case: Case, res: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n### {case.name}: {case.epochs} epochs x {len(case.y)} samples, batch {BATCH}, "
        f"{res['steps']} steps per run, {args.repeats} interleaved rounds after 1 warm-up\n"
    )
    print(
        "| variant | median s / run (min-max) | samples / s | x plain loop (paired median) "
        "| same, CPU time |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, ts in res["times"].items():
        spread = f"{res['med'][name]:.3f} ({min(ts):.3f}-{max(ts):.3f})"
        rate = res["samples"] / res["med"][name]
        print(
            f"| {name} | {spread} | {rate:,.0f} | {res['paired'][name]:.2f} "
            f"| {res['paired_cpu'][name]:.2f} |"
        )
    print()
    for name in (FIT_DL, FIT_TS):
        hold = res["paired_cpu"][name] >= FIT_TARGET
        print(
            f"- {name} / plain loop = {res['paired_cpu'][name]:.2f}x in CPU time (target >= "
            f"{FIT_TARGET:g}: {WORD[hold]}); {res['paired'][name]:.2f}x wall clock"
        )
    print(
        f"- fit's extra time per step over the plain loop (same DataLoader), median over "
        f"rounds: {res['overhead_us']:.0f} us wall, {res['overhead_cpu_us']:.0f} us CPU "
        "(differences of noisy totals: may be negative)"
    )
    print(
        f"- same arithmetic: on the same (un-shuffled) batches, max |w_fit - w_plain| after "
        f"one epoch = {res['same_weights']:.1e}; last-epoch loss of the last round: plain "
        f"{res['losses'][PLAIN]:.4f}, fit {res['losses'][FIT_DL]:.4f}"
    )


# --------------------------------------------------------------------------- per-step costs


def overhead_breakdown(args: argparse.Namespace) -> None:
    """Microseconds per step of each piece of work fit adds, LeNet on digits."""
    digits = load_dataset("digits")
    torch.manual_seed(0)
    model = create_model("lenet", input_shape=(1, 8, 8), num_classes=10)
    print(
        f"\n### Per-step work fit adds (LeNet / digits, batch {BATCH} and 64; us per step, "
        f"CPU time, median of {args.micro_rounds} interleaved rounds)\n"
    )
    print(
        "| piece (where) | runs | us, batch 256 | % of plain step | us, batch 64 "
        "| % of plain step |"
    )
    print("|---|---|---:|---:|---:|---:|")
    cols = [micro_costs(model, digits, bs, args) for bs in (BATCH, 64)]
    for name, when in MICRO_ROWS:
        cells = []
        for col in cols:
            us = col[name]
            cells.append(f"{us:.1f} | {100 * us / col[MICRO_PLAIN]:.1f}")
        print(f"| {name} | {when} | {' | '.join(cells)} |")


MICRO_PLAIN = "plain step: forward, CE, zero_grad, backward, step, loss.item()"
MICRO_ROWS = [
    (MICRO_PLAIN, "baseline"),
    ("fit's train_step, first epoch (label + shape checks on)", "epoch 0"),
    ("fit's train_step, later epochs", "epochs >= 1"),
    ("  finiteness check bool(isfinite(loss)) (step.py)", "every step"),
    ("  label check: y < 0 or y >= K, bool(any) (step.py)", "epoch 0"),
    ("  epoch metrics: loss sum fp64, n correct, seen[index] (loop.py)", "every step"),
    ("  LoaderSource: plan tensor -> list, parse_batch, index range check (data.py)", "every step"),
    ("  loss.item() (the plain loop's log)", "plain only"),
]


def micro_costs(model: nn.Module, digits: Any, bs: int, args: argparse.Namespace) -> dict:
    x, y = digits.x[:bs], digits.y[:bs]
    index = torch.randperm(len(digits.y))[:bs]
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    ctx = TrainContext(
        model, opt, fit_config(1), torch.device("cpu"), None, None, as_logits,
        num_samples=len(digits.y), seen=torch.zeros(len(digits.y), dtype=torch.bool),
    )  # fmt: skip
    batch = Batch(x, y, index)
    first, later = BatchChecks(model), BatchChecks(model)
    later.active = False
    model.train()
    logits = model(x).detach()
    losses = F.cross_entropy(logits, y, reduction="none")
    loss = losses.mean()
    source = make_source(DataLoader(digits, batch_size=bs, shuffle=True))
    raw = (x, y)
    plan = [index]
    total = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)

    def plain_step() -> None:
        out = F.cross_entropy(model(x), y)
        opt.zero_grad()
        out.backward()
        opt.step()
        out.item()

    def metrics() -> None:
        nonlocal total, correct
        total += losses.sum().double()
        correct += (logits.argmax(dim=1) == y).sum()
        ctx.seen[index] = True  # type: ignore[index]

    def loader_bookkeeping() -> None:
        lists = [b.tolist() for b in plan]  # LoaderSource.load: plan -> sampler lists
        torch.as_tensor(lists[0], dtype=torch.long)  # LoaderSource.plan: sampler -> tensors
        source._checked(parse_batch(raw, source.keys, index))  # type: ignore[union-attr]

    fns: dict[str, Callable[[], Any]] = {
        MICRO_ROWS[0][0]: plain_step,
        MICRO_ROWS[1][0]: lambda: train_step(ctx, model, batch, (), None, first),
        MICRO_ROWS[2][0]: lambda: train_step(ctx, model, batch, (), None, later),
        MICRO_ROWS[3][0]: lambda: bool(torch.isfinite(loss)),
        MICRO_ROWS[4][0]: lambda: first.labels(batch, logits),
        MICRO_ROWS[5][0]: metrics,
        MICRO_ROWS[6][0]: loader_bookkeeping,
        MICRO_ROWS[7][0]: lambda: loss.item(),
    }
    reps = {name: (args.micro_steps if i < 3 else 300) for i, name in enumerate(fns)}
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.micro_rounds):
        for name, fn in fns.items():
            c0 = time.process_time()  # CPU time: these pieces are too short for wall clock
            for _ in range(reps[name]):
                fn()
            times[name].append((time.process_time() - c0) / reps[name] * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


# --------------------------------------------------------------------------- 2. memory


def memory_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """One memorization_scores run in a fresh process; peak RSS and score bytes."""
    from netprism.memorization import default_config, memorization_scores

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = small_conv()
    # Warm-up on 2 batches: one-time costs (the first optimizer imports torch._dynamo, ~130 MB
    # and seconds) land before the measurement; then the RSS high-water mark is reset.
    warm = DataLoader(OnTheFly(2 * BATCH, seed=1), batch_size=BATCH, shuffle=True)
    one_epoch = default_config(epochs=1, device="cpu")
    memorization_scores(model, warm, one_epoch, methods=("curvature", "loss"), n_probes=1)
    reset = reset_peak_rss()
    ds = OnTheFly(cfg["n"])
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0)
    base = vm_status("VmRSS")
    t0 = time.perf_counter()
    res = memorization_scores(model, loader, one_epoch, methods=("curvature", "loss"), n_probes=1)
    seconds = time.perf_counter() - t0
    peak = vm_status("VmHWM")
    arrays = [*res.scores.values(), *res.per_epoch.values()]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in arrays}
    finite = all(bool(torch.isfinite(t).all()) for t in res.scores.values())
    return {
        "n": cfg["n"],
        "base": base,
        "peak": peak,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "seconds": seconds,
        "parts": res.seconds,
        "score_bytes": sum(storages.values()),
        "finite": finite and all(len(t) == cfg["n"] for t in res.scores.values()),
        "reset": reset,
    }


def run_memory_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory worker {cfg} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_section(args: argparse.Namespace) -> bool:
    large, small = args.mem_sizes
    # one at a time: the workers' times are reported too
    res = {n: run_memory_worker({"n": n, "threads": args.threads}) for n in (small, large)}
    print(
        f"\n## 2. Memory: memorization_scores on an on-the-fly dataset (3x32x32, generated in "
        f"__getitem__), DataLoader batch {BATCH} shuffle=True, 1 epoch, curvature + loss, "
        f"n_probes 1, small conv net; fresh process each (after a 2-batch warm-up run, then "
        f"the RSS high-water mark reset: {all(r['reset'] for r in res.values())}), "
        f"{args.threads} thread(s)\n"
    )
    print(
        "| N | peak RSS MB (VmHWM) | RSS before call MB | growth MB | score arrays MB "
        "| s (train / curvature / dynamics) | samples / s |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|")
    for n in (small, large):
        r = res[n]
        parts = r["parts"]
        split = " / ".join(f"{parts.get(k, 0.0):.1f}" for k in ("train", "curvature", "dynamics"))
        print(
            f"| {n:,} | {r['peak'] / MB:.0f} | {r['base'] / MB:.0f} | "
            f"{(r['peak'] - r['base']) / MB:.1f} | {r['score_bytes'] / MB:.1f} | "
            f"{r['seconds']:.1f} ({split}) | {n / r['seconds']:,.0f} |"
        )
    rl, rs = res[large], res[small]
    bound = MEM_FACTOR * rs["peak"] + rl["score_bytes"]
    ok = rl["peak"] <= bound and rl["finite"] and rs["finite"]
    extra = (rl["peak"] - rs["peak"]) / (large - small)
    extra_growth = ((rl["peak"] - rl["base"]) - (rs["peak"] - rs["base"])) / (large - small)
    print()
    print(
        f"- peak({large:,}) = {rl['peak'] / MB:.0f} MB vs {MEM_FACTOR:g} x peak({small:,}) + "
        f"score arrays = {bound / MB:.0f} MB (target: {WORD[ok]}); peak ratio "
        f"{rl['peak'] / rs['peak']:.2f}"
    )
    print(
        f"- memory per extra sample: {extra:.0f} B of peak RSS ({extra_growth:.0f} B of growth "
        f"over the pre-call RSS) vs {rl['score_bytes'] / large:.0f} B of returned score arrays"
    )
    print(f"- scores finite and of length N: {rl['finite'] and rs['finite']}")
    return ok


# --------------------------------------------------------------------------- 3. curvature


def score_context(model: nn.Module, data: Any, n: int) -> TrainContext:
    """A context like fit builds it, with ``data`` as both the training and scoring source."""
    source = make_source(data, batch_size=BATCH, name="train")
    return TrainContext(
        model, None, fit_config(1), torch.device("cpu"), source, source, as_logits,  # type: ignore[arg-type]
        num_samples=n, seen=None,
    )  # fmt: skip


IN_MEMORY, STREAM_T, STREAM_L = (
    "input_curvature on tensors (in memory)",
    "CurvatureTracker, TensorSource (streaming)",
    "CurvatureTracker, DataLoader over a map-style Dataset (LoaderSource)",
)


def curvature_section(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, probes: int, repeats: int
) -> bool:
    tracker = CurvatureTracker(n_probes=probes, batch_size=BATCH, seed=0)

    def methods(xs: torch.Tensor, ys: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
        n = len(ys)
        ctx_t = score_context(model, (xs, ys), n)
        loader = DataLoader(MapDataset(xs, ys), batch_size=BATCH, shuffle=True, num_workers=0)
        ctx_l = score_context(model, loader, n)

        def in_memory() -> torch.Tensor:
            s = input_curvature(model, xs, ys, n_probes=probes, batch_size=BATCH, seed=0)
            return torch.stack([s.norm, s.sq_norm, s.trace])

        fns_ctx[:] = [ctx_t, ctx_l]
        return {
            IN_MEMORY: in_memory,
            STREAM_T: lambda: tracker._score_epoch(ctx_t),
            STREAM_L: lambda: tracker._score_epoch(ctx_l),
        }

    fns_ctx: list[TrainContext] = []
    for fn in methods(x[:16], y[:16]).values():  # warm-up
        fn()
    fns = methods(x, y)
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, torch.Tensor] = {}
    for r in range(repeats):
        for key in list(fns) if r % 2 == 0 else list(reversed(fns)):
            t0, c0 = time.perf_counter(), time.process_time()
            out[key] = fns[key]()
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    read = {}  # the streaming paths' own work: reading the scoring batches, without the model
    for key, ctx in ((STREAM_T, fns_ctx[0]), (STREAM_L, fns_ctx[1])):
        reads = []
        for _ in range(5):
            t0 = time.perf_counter()
            for batch in ctx.score_batches(BATCH):
                batch.x.float()
            reads.append(time.perf_counter() - t0)
        read[key] = statistics.median(reads)
    bitwise_t = torch.equal(out[IN_MEMORY], out[STREAM_T])
    close_l = torch.allclose(out[IN_MEMORY], out[STREAM_L], rtol=1e-6, atol=1e-9)
    bitwise_l = torch.equal(out[IN_MEMORY], out[STREAM_L])
    assert bitwise_t, "TensorSource scores differ from input_curvature"
    assert close_l, "LoaderSource scores are not allclose to input_curvature"

    def ratios(ts: dict[str, list[float]]) -> dict[str, float]:
        return {k: statistics.median(s / m for s, m in zip(ts[k], ts[IN_MEMORY])) for k in ts}

    paired, paired_cpu = ratios(times), ratios(cpu)
    print(
        f"\n### {name}: N = {len(y)}, n_probes {probes}, batch {BATCH}, {repeats} interleaved "
        "rounds after 1 warm-up\n"
    )
    print(
        "| path | median s (min-max) | s / 1k samples | / in-memory, wall (paired median) "
        "| same, CPU time |"
    )
    print("|---|---:|---:|---:|---:|")
    for key, ts in times.items():
        med = statistics.median(ts)
        print(
            f"| {key} | {med:.3f} ({min(ts):.3f}-{max(ts):.3f}) | {med / len(y) * 1e3:.3f} "
            f"| {paired[key]:.3f} | {paired_cpu[key]:.3f} |"
        )
    ok = paired_cpu[STREAM_T] <= CURV_TARGET and paired_cpu[STREAM_L] <= CURV_TARGET
    print()
    print(
        f"- streaming / in-memory, CPU time: TensorSource {paired_cpu[STREAM_T]:.3f}, "
        f"LoaderSource {paired_cpu[STREAM_L]:.3f} (target <= {CURV_TARGET:g}: {WORD[ok]}); "
        f"wall clock {paired[STREAM_T]:.3f}, {paired[STREAM_L]:.3f}"
    )
    base = statistics.median(times[IN_MEMORY])
    print(
        f"- reading the scoring batches alone (no model): TensorSource "
        f"{read[STREAM_T] * 1e3:.2f} ms, LoaderSource {read[STREAM_L] * 1e3:.2f} ms per pass "
        f"= {100 * read[STREAM_T] / base:.2f} % / {100 * read[STREAM_L] / base:.2f} % of the "
        "in-memory scoring time (the streaming paths' own cost, free of timing noise)"
    )
    print(
        f"- scores (norm, sq_norm, trace): TensorSource equal bit for bit: {bitwise_t}; "
        f"LoaderSource allclose: {close_l} (bit for bit: {bitwise_l})"
    )
    return ok


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~25 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds, LeNet (9)")
    parser.add_argument("--resnet-repeats", type=int, default=None, help="rounds, ResNet (3)")
    parser.add_argument("--lenet-epochs", type=int, default=None, help="throughput epochs (5)")
    parser.add_argument("--resnet-epochs", type=int, default=None, help="throughput epochs (2)")
    parser.add_argument("--resnet-n", type=int, default=None, help="random 32x32 images (512)")
    parser.add_argument(
        "--mem-sizes", type=int, nargs=2, default=None, help="large small (200000 20000)"
    )
    parser.add_argument("--n-probes", type=int, default=10, help="curvature probes, LeNet")
    parser.add_argument("--resnet-probes", type=int, default=1, help="curvature probes, ResNet")
    parser.add_argument("--curv-repeats", type=int, default=None, help="rounds, ResNet scoring (5)")
    parser.add_argument("--curv-lenet-n", type=int, default=None, help="digits scored (all)")
    parser.add_argument("--curv-resnet-n", type=int, default=None, help="ResNet scored (288)")
    parser.add_argument("--micro-rounds", type=int, default=None, help="breakdown rounds (7)")
    parser.add_argument("--micro-steps", type=int, default=None, help="steps per round (20)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(memory_worker(json.loads(args.worker))))
        return 0
    torch.set_num_threads(args.threads)
    q = args.quick
    args.repeats = args.repeats or (3 if q else 9)
    args.resnet_repeats = args.resnet_repeats or (2 if q else 3)
    args.lenet_epochs = args.lenet_epochs or (2 if q else 5)
    args.resnet_epochs = args.resnet_epochs or (1 if q else 2)
    args.resnet_n = args.resnet_n or (64 if q else 512)
    args.mem_sizes = args.mem_sizes or ([4_000, 400] if q else [200_000, 20_000])
    args.curv_lenet_n = args.curv_lenet_n or (512 if q else None)
    args.curv_resnet_n = args.curv_resnet_n or (32 if q else 288)
    args.micro_rounds = args.micro_rounds or (3 if q else 7)
    args.curv_repeats = args.curv_repeats or (2 if q else 5)
    args.micro_steps = args.micro_steps or (5 if q else 20)

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print("# bench_engine")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {os.cpu_count()} CPU "
        f"cores, batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}{', quick' if q else ''}; load "
        f"average {load}"
    )
    t_start = time.perf_counter()
    ok: dict[str, bool] = {}

    print("\n## 1. Throughput: fit vs a plain PyTorch loop")
    cases = make_cases(args)
    for case in cases:
        res_args = copy.copy(args)
        if "resnet" in case.name:
            res_args.repeats = args.resnet_repeats
        res, hold = throughput(case, res_args)
        report_throughput(case, res, res_args)
        ok[f"throughput, {case.name}"] = hold
    overhead_breakdown(args)

    ok["memory"] = memory_section(args)

    print("\n## 3. Curvature scoring: streaming (fit's per-epoch pass) vs in-memory")
    lenet, resnet = cases[0], cases[1]
    n_res = args.curv_resnet_n
    xr = torch.randn(n_res, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    yr = torch.randint(0, 10, (n_res,), generator=torch.Generator().manual_seed(4))
    n_len = args.curv_lenet_n or len(lenet.y)
    ok["curvature, lenet"] = curvature_section(
        lenet.name.split(" (")[0], copy.deepcopy(lenet.template), lenet.x[:n_len],
        lenet.y[:n_len], args.n_probes, args.repeats,
    )  # fmt: skip
    ok["curvature, resnet"] = curvature_section(
        "resnet18 w16 / random 32x32x3", copy.deepcopy(resnet.template), xr, yr,
        args.resnet_probes, args.curv_repeats,
    )  # fmt: skip

    print("\n## Summary\n")
    for key, hold in ok.items():
        print(f"- {key}: {WORD[hold]}")
    print(f"\nall targets hold: {all(ok.values())} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
