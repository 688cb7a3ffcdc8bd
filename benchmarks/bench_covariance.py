"""Streaming layer covariances vs stacking all rows: peak memory and throughput.

The subspace lens (GPM, utilized rank) needs each layer's input scatter ``R^T R``.  netprism
streams it: :func:`netprism.core.capture.layer_covariances` runs the model with forward hooks
that turn each chosen layer's input into rows (Linear: the input vector; Conv2d: unfolded
receptive-field patches, optionally ``rows_per_batch`` of them per layer and batch) and feed
them to one float64 :class:`netprism.core.subspace.StreamingCovariance` per layer.  The naive
way stacks every captured row (``capture(...)`` without a consumer) and forms ``X^T X`` after.

Model: a CIFAR-style VGG-11 (width x0.25, batch norm, eval mode) on random 32x32 inputs that
are generated batch by batch (so the data itself does not grow with N); layers: every Conv2d
and Linear, inputs.

1. **Peak memory**, one fresh subprocess per configuration (``--worker-threads`` threads, two
   at a time; they report memory only), for N samples, streaming vs stacking, with subsampled
   rows (``--rows-per-batch``, by default 1024 rows per layer and batch so that the stack
   outgrows the forward pass's transients) and with full rows.  Measured from the moment the
   model exists, so the forward pass's own transients count in both: the peak of the
   process's anonymous resident memory (every tensor lives there), sampled every 0.5 ms from
   ``/proc/self/statm``, and in brackets the growth of the RSS high-water mark (``VmHWM``,
   reset through ``/proc/self/clear_refs`` first; it also counts file-backed library pages).
   ``resource.getrusage(...).ru_maxrss`` is not usable here: in a child it starts at the
   parent's high-water mark (inherited at exec), so it showed 0 MB growth for runs smaller than
   the parent.  glibc is told to serve blocks >= 64 KiB by mmap so that freed memory leaves
   the RSS.  The bytes each approach must hold are also computed analytically (stacking: all
   rows in float32, twice, for the chunks and their concatenation; streaming: the float64
   ``D x D`` and ``D`` accumulators).  Stacking runs are skipped when they would exceed
   ``--stack-budget-gb``.  The streaming scatters are checked against the stacked ``X^T X``
   (trace of each layer).
2. **Throughput**, in this process: a plain ``no_grad`` eval forward pass over N samples vs
   the same forward pass with the streaming covariance updates (same batches, batch size and
   layers), at ``--throughput-rows`` rows per layer and batch and with full rows; ratio
   ``plain / streaming`` (target >= 0.7, i.e. the covariance costs at most ~43 % extra).
   Median of ``--repeats`` interleaved timed runs after one warm-up on one batch.

Run::

    .venv/bin/python benchmarks/bench_covariance.py           # ~2 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_covariance.py --quick   # ~20 s
    .venv/bin/python benchmarks/bench_covariance.py --throughput-rows 256 64 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from rss import reset_peak_rss  # benchmarks/rss.py
from torch import nn

from netprism.core.capture import capture, conv_patches, layer_covariances, select_layers
from netprism.models import create_model

LAYERS = (nn.Conv2d, nn.Linear)
INPUT_SHAPE = (3, 32, 32)
THROUGHPUT_TARGET = 0.7  # plain / streaming
MB = 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_model() -> nn.Module:
    torch.manual_seed(0)
    model = create_model("vgg", input_shape=INPUT_SHAPE, num_classes=10, depth=11, width_mult=0.25)
    return model.eval()


def batches(n: int, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """N random inputs in batches, each generated on demand (seeded by its index)."""
    for i, start in enumerate(range(0, n, batch_size)):
        gen = torch.Generator().manual_seed(seed * 100_003 + i)
        yield torch.randn(min(batch_size, n - start), *INPUT_SHAPE, generator=gen)


def row_shapes(model: nn.Module, batch_size: int) -> dict[str, tuple[int, int]]:
    """(rows per full batch, D) of every chosen layer's input rows, before any subsampling."""
    shapes: dict[str, tuple[int, int]] = {}
    layers = select_layers(model, LAYERS)

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, _out: Any) -> None:
            x = args[0]
            rows = conv_patches(x, module) if isinstance(module, nn.Conv2d) else x
            shapes[name] = (int(rows.shape[0]), int(rows.shape[1]))

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in layers.items()]
    with torch.no_grad():
        model(torch.zeros(batch_size, *INPUT_SHAPE))
    for h in handles:
        h.remove()
    return shapes


def analytic_bytes(
    model: nn.Module, n: int, batch_size: int, rows_per_batch: int | None
) -> tuple[int, int]:
    """(stacking, streaming) bytes that must be held at once.

    Stacking: every row in float32, twice (the per-batch chunks and their concatenation);
    streaming: the float64 scatter (D, D) and sum (D,) of each layer (rows of one batch are
    transient and do not depend on N).
    """
    stack = stream = 0
    full, rest = divmod(n, batch_size)
    for rows_b, d in row_shapes(model, batch_size).values():
        per_sample = rows_b // batch_size

        def kept(b: int, per_sample: int = per_sample) -> int:
            r = per_sample * b
            return r if rows_per_batch is None else min(r, rows_per_batch)

        rows = full * kept(batch_size) + (kept(rest) if rest else 0)
        stack += 2 * rows * d * 4
        stream += (d * d + d) * 8
    return stack, stream


def maxrss_bytes() -> int:
    """This process's RSS high-water mark: ``VmHWM`` (resettable), else ``ru_maxrss``.

    ``ru_maxrss`` alone is not used: it also holds the high-water mark inherited at ``exec``
    from the parent's address space (vfork/posix_spawn), so a child of a large parent reports
    no growth until it outgrows its parent, and ``clear_refs`` does not reset that part.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


# --------------------------------------------------------------------------- memory workers


class AnonPeak:
    """Samples the process's anonymous resident memory (``statm`` resident - shared) every
    ``interval`` seconds in a thread and keeps the maximum.

    Anonymous memory holds every tensor; file-backed pages (the mapped torch libraries) are left
    out because the kernel may reclaim them mid-run, which makes whole-RSS deltas, including
    ``ru_maxrss``, undercount.
    """

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * PAGE

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval)

    def __enter__(self) -> AnonPeak:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """One memory configuration, run in a fresh process; returns memory growth in bytes."""
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    model = make_model()
    bs, n, rpb = cfg["batch_size"], cfg["n"], cfg["rows_per_batch"]
    kwargs = {"rows_per_batch": rpb, "seed": 0}
    # Baselines once the model exists; the forward pass's own transients count in both methods.
    reset = reset_peak_rss()
    base_rss, base_anon = maxrss_bytes(), AnonPeak.now()
    with AnonPeak() as anon:
        if cfg["method"] == "streaming":
            covs = layer_covariances(model, list(LAYERS), batches(n, bs), **kwargs)
        else:
            rows = capture(model, list(LAYERS), batches(n, bs), **kwargs)
            assert rows is not None
            scatters = {}
            for name in list(rows):  # one layer at a time in float64, as StreamingCovariance
                r = rows.pop(name).double()
                scatters[name] = r.T @ r
                del r
    rss_growth = maxrss_bytes() - base_rss  # VmHWM growth
    if cfg["method"] == "streaming":
        trace = {k: float(c.scatter().diagonal().sum()) for k, c in covs.items()}
    else:
        trace = {k: float(sc.diagonal().sum()) for k, sc in scatters.items()}
    return {
        "anon_growth": anon.peak - base_anon,
        "rss_growth": rss_growth,
        "trace": trace,
        "reset": reset,
    }


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    # Large blocks via mmap, returned to the OS on free: RSS then follows live memory instead of
    # glibc's cached free blocks (which would hide allocations below an earlier peak).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {cfg} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_table(args: argparse.Namespace) -> bool:
    """Print the peak-memory table; True if stacking grows with N (streaming stays flat)."""
    model = make_model()
    bs = args.batch_size
    plan = [("subsampled", args.rows_per_batch, n) for n in args.sizes]
    plan += [("full", None, n) for n in args.full_sizes]
    jobs: dict[tuple[str, int, str], dict[str, Any]] = {}
    held: dict[tuple[str, int], tuple[int, int]] = {}
    for label, rpb, n in plan:
        held[label, n] = analytic_bytes(model, n, bs, rpb)
        cfg = {"n": n, "batch_size": bs, "rows_per_batch": rpb, "threads": args.worker_threads}
        jobs[label, n, "streaming"] = {**cfg, "method": "streaming"}
        if held[label, n][0] <= args.stack_budget_gb * 2**30:
            jobs[label, n, "stacking"] = {**cfg, "method": "stacking"}
    # Workers only report RSS (not time), so two may run at once.
    with ThreadPoolExecutor(max_workers=args.parallel_workers) as pool:
        futures = {key: pool.submit(run_worker, cfg) for key, cfg in jobs.items()}
        res = {key: f.result() for key, f in futures.items()}

    reset = all(r["reset"] for r in res.values())
    print(
        f"\n## Peak memory growth, MB: sampled anonymous RSS (RSS high-water growth in "
        f"brackets; reset: {reset}); fresh process each, {args.worker_threads} thread(s)\n"
    )
    print(
        "| rows | N | streaming peak | stacking peak | streaming held (analytic) "
        "| stacking held (analytic) | scatters agree |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    growth: dict[str, dict[str, list[float]]] = {}
    for label, rpb, n in plan:
        g = growth.setdefault(label, {"streaming": [], "stacking": [], "n": []})
        stream = res[label, n, "streaming"]
        g["streaming"].append(stream["anon_growth"] / MB)
        g["n"].append(n)
        stack = res.get((label, n, "stacking"))
        if stack is None:
            stack_cell, agree = f"skipped (> {args.stack_budget_gb:g} GB)", "-"
        else:
            g["stacking"].append(stack["anon_growth"] / MB)
            stack_cell = f"{stack['anon_growth'] / MB:.0f} ({stack['rss_growth'] / MB:.0f})"
            agree = str(
                all(
                    abs(stack["trace"][k] - v) <= 1e-9 * max(1.0, abs(v))
                    for k, v in stream["trace"].items()
                )
            )
        name = "full" if rpb is None else f"{rpb} / layer / batch"
        stack_b, stream_b = held[label, n]
        print(
            f"| {name} | {n} | {stream['anon_growth'] / MB:.0f} "
            f"({stream['rss_growth'] / MB:.0f}) | {stack_cell} | "
            f"{stream_b / MB:.1f} | {stack_b / MB:.0f} | {agree} |"
        )
    print()
    grows = True
    for label, g in growth.items():
        stack = " -> ".join(f"{v:.0f}" for v in g["stacking"]) or "not run"
        print(
            f"- {label} rows, N {g['n'][0]} -> {g['n'][-1]}: streaming peak "
            f"{min(g['streaming']):.0f}-{max(g['streaming']):.0f} MB at every N; "
            f"stacking {stack} MB"
        )
        if len(g["stacking"]) >= 2:
            grows &= g["stacking"][-1] > 1.5 * g["stacking"][0]
    return grows


# --------------------------------------------------------------------------- throughput


def throughput_table(args: argparse.Namespace) -> bool:
    model = make_model()
    bs, n = args.batch_size, args.throughput_n
    data = list(batches(n, bs, seed=1))  # pre-generated: data generation is not timed

    def plain(xs: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for xb in xs:
                model(xb)

    def streaming(xs: list[torch.Tensor], rpb: int | None) -> None:
        layer_covariances(model, list(LAYERS), xs, rows_per_batch=rpb, seed=0)

    configs: dict[str, int | None] = {
        f"forward + streaming cov ({r} rows / layer / batch)": r for r in args.throughput_rows
    }
    configs["forward + streaming cov (full rows)"] = None
    fns = {"plain forward": lambda xs: plain(xs)}
    fns.update({name: (lambda xs, r=r: streaming(xs, r)) for name, r in configs.items()})
    for fn in fns.values():  # warm-up on one batch
        fn(data[:1])
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):  # interleaved, so background load hits all passes alike
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(data)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain forward"]
    print(
        f"\n## Throughput (N = {n}, batch size {bs}, median of {args.repeats} interleaved "
        "runs after 1 warm-up)\n"
    )
    print("| pass | median s (min-max) | samples / s | plain / this |")
    print("|---|---:|---:|---:|")
    for name, t in med.items():
        spread = f"{t:.3f} ({min(times[name]):.3f}-{max(times[name]):.3f})"
        print(f"| {name} | {spread} | {n / t:.0f} | {base / t:.2f} |")
    ok = True
    print()
    for name, t in list(med.items())[1:]:
        ratio = base / t
        hold = ratio >= THROUGHPUT_TARGET
        ok &= hold
        print(
            f"- plain / ({name.removeprefix('forward + ')}) = {ratio:.2f} (target >= "
            f"{THROUGHPUT_TARGET:g}: {'holds' if hold else 'does NOT hold'})"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~20 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="N, subsampled rows")
    parser.add_argument("--full-sizes", type=int, nargs="+", default=None, help="N, full rows")
    parser.add_argument("--throughput-n", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256, help="capture's default")
    parser.add_argument(
        "--rows-per-batch", type=int, default=1024, help="rows / layer / batch, memory table"
    )
    parser.add_argument(
        "--throughput-rows", type=int, nargs="+", default=[128, 32], help="rows_per_batch timed"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack-budget-gb", type=float, default=3.0)
    parser.add_argument("--worker-threads", type=int, default=1, help="threads per memory worker")
    parser.add_argument("--parallel-workers", type=int, default=2, help="memory workers at once")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.sizes = args.sizes or ([256, 1024] if args.quick else [1000, 2000, 4000, 8000])
    args.full_sizes = args.full_sizes or ([256] if args.quick else [1000, 2000])
    args.throughput_n = args.throughput_n or (256 if args.quick else 512)
    if args.quick:
        args.repeats = min(args.repeats, 2)

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print("# bench_covariance")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, VGG-11 x0.25 on "
        f"random {INPUT_SHAPE}, layers: all Conv2d + Linear inputs, batch size "
        f"{args.batch_size}{', quick' if args.quick else ''}; load average {load}"
    )
    model = make_model()
    print("\n| layer | rows / sample (full) | D | scatter MB (float64) |")
    print("|---|---:|---:|---:|")
    for name, (rows_b, d) in row_shapes(model, args.batch_size).items():
        print(f"| {name} | {rows_b // args.batch_size} | {d} | {d * d * 8 / MB:.2f} |")
    mem_ok = memory_table(args)
    thr_ok = throughput_table(args)
    print(
        f"\nstacking grows while streaming stays flat: {mem_ok}; throughput targets hold: {thr_ok}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
