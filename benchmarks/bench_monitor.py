"""``MemorizationMonitor`` in a plain PyTorch loop: what each call adds to a training epoch.

The monitor brings netprism's memorization scores to a loop the user owns.  Its target: the
curvature computation itself is the cost, the monitor adds <= 5 % beyond it.  This measures,
on one hand-written loop (LeNet from ``create_model`` on the bundled 8x8 ``digits``, 1,347
samples; a shuffled ``DataLoader`` over ``(index, x, y)``, batch 64, ``num_workers=0``; SGD lr
0.05 momentum 0.9; forward, cross-entropy, ``zero_grad``, backward, ``step``, one
``loss.item()`` per step), every configuration below over the same epochs:

a. **plain**: the loop alone, the baseline;
b. **+ observe**: ``monitor.observe(indices, logits, labels)`` after every step (the
   ``train_loss`` score; no ``epoch_end``);
c. **+ epoch_end, dynamics**: ``monitor.epoch_end(model, epoch)`` after every epoch with
   ``methods=DYNAMICS_SCORES`` (loss, confidence, AUM, forgetting, cartography, entropy: one
   eval pass, no curvature); next to it, as its reference, the loop plus a hand-written
   eval pass (no-grad forward in batches of the monitor's size, per-sample log-softmax loss,
   written to a float64 array at the samples' indices);
d. **+ epoch_end, curvature**: ``methods=("curvature",)``; next to it, as the reference for
   "the curvature itself", the loop plus a direct call of
   :func:`netprism.core.curvature.input_curvature` on the same tensors with the monitor's
   settings (``n_probes``, ``h``, ``backend``, probe seed ``seed + epoch``, batch 256, eval
   mode).  The monitor's per-epoch curvature is asserted equal to the direct call's bit for
   bit, so both do the same arithmetic;
e. everything at once (observe + ``epoch_end`` with all methods), for reference.

Each round runs every configuration once on a fresh copy of the same initial weights and the
same shuffling seed (order reversed every other round, so drift hits all alike); a run is
``--epochs`` epochs.  Ratios are medians over rounds of the paired ``configuration / plain``
(or ``/ reference``) times, in process CPU time (what other jobs on a shared machine do not
inflate; one thread and ``num_workers=0`` keep all the work in this process), wall clock
next to it.  The headline: monitor-with-curvature epoch = plain epoch + curvature cost + X,
with X in % of (plain epoch + curvature cost) = paired median of ``(d) / (d reference) - 1``.

A second table times the monitor's own work without the model (CPU microseconds, many
repeats): one ``observe`` call next to one plain training step, and ``epoch_end``'s
bookkeeping around the scoring pass (random-state and train/eval-mode save and restore, the
merge of observations, reading the scoring batches) next to the curvature pass: a
noise-free view of X.

Threads default to 1 (``--threads``), as in the other benchmarks: both sides of every ratio
do the same arithmetic, and on a shared 2-core machine OpenMP threads stall whenever the other
core is busy.

Run::

    .venv/bin/python benchmarks/bench_monitor.py            # ~2-4 min on 2 CPU cores (shared: more)
    .venv/bin/python benchmarks/bench_monitor.py --quick    # ~20 s
    .venv/bin/python benchmarks/bench_monitor.py --threads 2 --model mlp
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from netprism.core.curvature import input_curvature
from netprism.data import load_dataset
from netprism.memorization import ALL_METHODS, DYNAMICS_SCORES, MemorizationMonitor
from netprism.memorization.monitor import _preserved_modes, _preserved_rng
from netprism.models import create_model

TARGET = 5.0  # % the monitor may add beyond the raw curvature computation
BATCH = 64  # training batch
SCORE_BATCH = 256  # the monitor's default scoring batch (curvature and dynamics)
N_PROBES, H, BACKEND, SEED = 10, 1e-3, "finite_difference", 0  # the monitor's defaults
LR, MOMENTUM = 0.05, 0.9
WORD = {True: "holds", False: "does NOT hold"}

PLAIN = "a. plain epoch"
OBSERVE = "b. + observe every step"
DYN = "c. + epoch_end, dynamics methods"
DYN_REF = "c-ref. + hand-written eval pass (reference)"
CURV = "d. + epoch_end, curvature"
CURV_REF = "d-ref. + input_curvature direct call (reference)"
ALL = "e. + observe + epoch_end, all methods"
REFERENCE_OF = {DYN: DYN_REF, CURV: CURV_REF}


# --------------------------------------------------------------------------- the loops


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    loader: DataLoader,
    monitor: MemorizationMonitor | None = None,
) -> float:
    """One epoch of the hand-written loop; ``observe`` after every step if a monitor is given."""
    model.train()
    total, count = 0.0, 0
    for idx, xb, yb in loader:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(yb)  # the per-step log users write
        count += len(yb)
        if monitor is not None:
            monitor.observe(idx, logits, yb)
    return total / count


@torch.no_grad()
def eval_pass(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The hand-written reference of the dynamics pass: per-sample loss of every sample."""
    was = model.training
    model.eval()
    out = torch.empty(len(y), dtype=torch.float64)
    for start in range(0, len(y), SCORE_BATCH):
        sl = slice(start, start + SCORE_BATCH)
        log_p = F.log_softmax(model(x[sl]).double(), dim=1)
        out[sl] = -log_p.gather(1, y[sl].unsqueeze(1)).squeeze(1)
    model.train(was)
    return out


def raw_curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
    """The curvature itself: ``input_curvature`` with the monitor's settings (eval mode)."""
    s = input_curvature(
        model, x, y, n_probes=N_PROBES, h=H, backend=BACKEND, seed=SEED + epoch,
        batch_size=SCORE_BATCH,
    )  # fmt: skip
    return s.norm


class Case:
    """The data, initial weights and the run of each configuration."""

    def __init__(self, model_name: str) -> None:
        digits = load_dataset("digits")
        self.x, self.y = digits.x, digits.y
        self.n = len(self.y)
        torch.manual_seed(0)
        if model_name == "lenet":
            self.template = create_model("lenet", input_shape=(1, 8, 8), num_classes=10)
        else:
            self.template = create_model("mlp", input_shape=(1, 8, 8), num_classes=10)
        self.name = f"{model_name} / digits 8x8 (N = {self.n})"
        self.train_data = TensorDataset(torch.arange(self.n), self.x, self.y)
        self.checked: dict[str, float] = {}

    def monitor(self, methods: tuple[str, ...]) -> MemorizationMonitor:
        return MemorizationMonitor(
            (self.x, self.y), methods=methods, n_probes=N_PROBES, h=H, backend=BACKEND,
            seed=SEED, batch_size=SCORE_BATCH,
        )  # fmt: skip

    def run(self, config: str, epochs: int, shuffle_seed: int) -> tuple[float, float]:
        """Train ``epochs`` epochs of ``config`` from the initial weights; (wall s, CPU s).
        Model, optimizer, loader and monitor are built before the clock starts."""
        model = copy.deepcopy(self.template)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        gen = torch.Generator().manual_seed(shuffle_seed)  # same batches for every config
        loader = DataLoader(
            self.train_data, batch_size=BATCH, shuffle=True, num_workers=0, generator=gen
        )
        methods = {OBSERVE: ("loss",), DYN: DYNAMICS_SCORES, CURV: ("curvature",), ALL: ALL_METHODS}
        monitor = self.monitor(methods[config]) if config in methods else None
        observing = monitor if config in (OBSERVE, ALL) else None
        refs: list[torch.Tensor] = []
        t0, c0 = time.perf_counter(), time.process_time()
        for epoch in range(epochs):
            train_epoch(model, opt, loader, observing)
            if config in (DYN, CURV, ALL):
                assert monitor is not None
                monitor.epoch_end(model, epoch)
            elif config == DYN_REF:
                eval_pass(model, self.x, self.y)
            elif config == CURV_REF:
                refs.append(raw_curvature(model, self.x, self.y, epoch))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if config == CURV:  # also checks that d and d-ref trained the same weights
            self.checked["curv"] = monitor.scores().per_epoch["curvature"]  # type: ignore[union-attr,assignment]
        if config == CURV_REF:
            self.checked["curv_ref"] = torch.stack(refs)  # type: ignore[assignment]
        return wall, cpu


# --------------------------------------------------------------------------- 1. epochs


def epochs_section(case: Case, args: argparse.Namespace) -> tuple[bool, dict[str, Any]]:
    configs = [PLAIN, OBSERVE, DYN, DYN_REF, CURV, CURV_REF, ALL]
    for config in configs:  # warm-up: one epoch of each (first-call costs, allocator)
        case.run(config, 1, shuffle_seed=10_000)
    wall: dict[str, list[float]] = {c: [] for c in configs}
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    equal = True
    for r in range(args.rounds):
        for config in configs if r % 2 == 0 else list(reversed(configs)):
            w, c = case.run(config, args.epochs, shuffle_seed=r)
            wall[config].append(w / args.epochs)
            cpu[config].append(c / args.epochs)
        equal = equal and torch.equal(case.checked["curv"], case.checked["curv_ref"])
    assert equal, "the monitor's per-epoch curvature differs from input_curvature's"

    def paired(ts: dict[str, list[float]], base: str) -> dict[str, float]:
        return {k: statistics.median(t / b for t, b in zip(ts[k], ts[base])) for k in ts}

    def quartiles(values: list[float]) -> tuple[float, float]:
        q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        return q[0], q[2]

    rel_cpu, rel_wall = paired(cpu, PLAIN), paired(wall, PLAIN)
    print(
        f"\n### {case.name}: {args.epochs} epoch(s) per run, batch {BATCH}, "
        f"{-(-case.n // BATCH)} steps per epoch; scoring batch {SCORE_BATCH}, n_probes "
        f"{N_PROBES}, h {H:g}, {BACKEND}; {args.rounds} interleaved rounds after 1 warm-up\n"
    )
    print(
        "| configuration | CPU ms / epoch, median (min-max) | x plain, CPU (paired median) "
        "| x plain, wall | vs its reference, CPU (paired median) |"
    )
    print("|---|---:|---:|---:|---:|")
    for config in configs:
        ts = [1e3 * t for t in cpu[config]]
        vs = "-"
        if config in REFERENCE_OF:
            ref = REFERENCE_OF[config]
            ratio = statistics.median(t / b for t, b in zip(cpu[config], cpu[ref]))
            vs = f"{100 * (ratio - 1):+.1f} %"
        print(
            f"| {config} | {statistics.median(ts):.1f} ({min(ts):.1f}-{max(ts):.1f}) "
            f"| {rel_cpu[config]:.3f} | {rel_wall[config]:.3f} | {vs} |"
        )

    # the headline: d = plain + curvature + X
    x_cpu = [100 * (d / r - 1) for d, r in zip(cpu[CURV], cpu[CURV_REF])]
    x_wall = [100 * (d / r - 1) for d, r in zip(wall[CURV], wall[CURV_REF])]
    plain_ms = 1e3 * statistics.median(cpu[PLAIN])
    curv_ms = 1e3 * statistics.median(r - p for r, p in zip(cpu[CURV_REF], cpu[PLAIN]))
    extra_ms = 1e3 * statistics.median(d - r for d, r in zip(cpu[CURV], cpu[CURV_REF]))
    x_med = statistics.median(x_cpu)
    lo, hi = quartiles(x_cpu)
    ok = x_med <= TARGET
    obs = 100 * (rel_cpu[OBSERVE] - 1)
    print()
    print(
        f"- monitor with curvature, per epoch (CPU, medians): plain {plain_ms:.1f} ms + "
        f"curvature {curv_ms:.1f} ms + X {extra_ms:+.1f} ms; X = "
        f"{x_med:+.2f} % of (plain + curvature) (quartiles over rounds {lo:+.2f} .. "
        f"{hi:+.2f} %; wall clock {statistics.median(x_wall):+.2f} %): target <= {TARGET:g} %: "
        f"{WORD[ok]}"
    )
    print(
        f"- the curvature itself costs {curv_ms / plain_ms:.1f}x a plain epoch here "
        f"(n_probes {N_PROBES}: {N_PROBES + 1} forward + backward passes per sample)"
    )
    print(
        f"- observe on every step: {obs:+.1f} % of a plain epoch (paired median, CPU); "
        f"dynamics epoch_end: {100 * (rel_cpu[DYN] - 1):+.1f} % of a plain epoch, "
        f"{100 * (rel_cpu[DYN_REF] - 1):+.1f} % for the hand-written eval pass (ratios of noisy "
        "totals; the table below has observe's cost free of noise)"
    )
    print(
        f"- same arithmetic: the monitor's per-epoch curvature equals input_curvature's bit "
        f"for bit in every round: {equal}"
    )
    summary = {
        "x_med": x_med,
        "plain_ms": plain_ms,
        "curv_ms": curv_ms,
        "steps": -(-case.n // BATCH),
    }
    return ok, summary


# --------------------------------------------------------------------------- 2. own work

MICRO_STEP = "plain training step (batch 64)"
MICRO_OBSERVE = "observe(indices, logits, labels), batch 64"
MICRO_BOOKKEEPING = "epoch_end bookkeeping: RNG + modes save/restore, merge observations"
MICRO_READ = "reading the scoring batches (TensorSource, batch 256), whole set"


def own_work_section(case: Case, summary: dict[str, Any], args: argparse.Namespace) -> None:
    """CPU microseconds of the monitor's own work (no model), next to what it rides on."""
    model = copy.deepcopy(case.template)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    idx = torch.randperm(case.n)[:BATCH]
    xb, yb = case.x[idx], case.y[idx]
    logits = model(xb)
    monitor = case.monitor(("loss",))
    curv_monitor = case.monitor(("curvature",))
    device = torch.device("cpu")

    def plain_step() -> None:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    def bookkeeping() -> None:  # epoch_end around the scoring pass
        with _preserved_rng(device), _preserved_modes(model):
            pass
        curv_monitor._merge_observed(False)

    def read_batches() -> None:  # the streaming source's own work in the scoring pass
        for batch in curv_monitor.source.ordered(SCORE_BATCH):
            batch.x.float()

    def observe() -> None:
        monitor.observe(idx, logits, yb)

    many, few = args.micro_reps, max(1, args.micro_reps // 10)
    rows: list[tuple[str, Callable[[], Any], int]] = [
        (MICRO_STEP, plain_step, few),
        (MICRO_OBSERVE, observe, many),
        (MICRO_BOOKKEEPING, bookkeeping, many),
        (MICRO_READ, read_batches, few),
    ]
    for _, fn, _ in rows:
        fn()
    times: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    for _ in range(args.micro_rounds):
        for name, fn, reps in rows:
            c0 = time.process_time()
            for _ in range(reps):
                fn()
            times[name].append((time.process_time() - c0) / reps * 1e6)
    us = {name: statistics.median(t) for name, t in times.items()}
    steps = summary["steps"]
    epoch_us = 1e3 * summary["plain_ms"]
    both_us = 1e3 * (summary["plain_ms"] + summary["curv_ms"])
    print(
        f"\n### The monitor's own work, without the model ({case.name.split(' (')[0]}; CPU us, "
        f"median of {args.micro_rounds} rounds)\n"
    )
    print("| piece | runs | us per run | per epoch, % of plain epoch | % of plain + curvature |")
    print("|---|---|---:|---:|---:|")
    per_epoch = {
        MICRO_STEP: (f"{steps} x / epoch", steps),
        MICRO_OBSERVE: (f"{steps} x / epoch", steps),
        MICRO_BOOKKEEPING: ("1 x / epoch_end", 1),
        MICRO_READ: ("1 x / epoch_end", 1),
    }
    for name, _, _ in rows:
        when, k = per_epoch[name]
        print(
            f"| {name} | {when} | {us[name]:.1f} | {100 * k * us[name] / epoch_us:.2f} "
            f"| {100 * k * us[name] / both_us:.3f} |"
        )
    own = us[MICRO_BOOKKEEPING] + us[MICRO_READ]
    print()
    print(
        f"- epoch_end's own work beyond the curvature arithmetic: {own:.0f} us per epoch = "
        f"{100 * own / both_us:.3f} % of (plain epoch + curvature), a noise-free estimate of X "
        "(an upper one: input_curvature reads the same tensors by slicing)"
    )
    print(
        f"- observe: {us[MICRO_OBSERVE]:.0f} us per step = "
        f"{100 * us[MICRO_OBSERVE] / us[MICRO_STEP]:.1f} % of a plain step"
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (~20 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--model", choices=("lenet", "mlp"), default="lenet", help="(lenet)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (25)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (2)")
    parser.add_argument("--micro-rounds", type=int, default=None, help="own-work rounds (7)")
    parser.add_argument("--micro-reps", type=int, default=None, help="calls per round (500)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    q = args.quick
    args.rounds = args.rounds or (5 if q else 25)
    args.epochs = args.epochs or (1 if q else 2)
    args.micro_rounds = args.micro_rounds or (3 if q else 7)
    args.micro_reps = args.micro_reps or (200 if q else 500)

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print("# bench_monitor")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {os.cpu_count()} CPU "
        f"cores, batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}{', quick' if q else ''}; load "
        f"average {load}"
    )
    t_start = time.perf_counter()
    case = Case(args.model)
    print("\n## 1. Epoch time of each configuration vs the plain loop")
    ok, summary = epochs_section(case, args)
    own_work_section(case, summary, args)
    print("\n## Summary\n")
    print(
        f"- the monitor adds {summary['x_med']:+.2f} % beyond the raw curvature computation "
        f"(target <= {TARGET:g} %): {WORD[ok]}"
    )
    print(f"\ntarget holds: {ok} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
