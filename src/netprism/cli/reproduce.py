"""``netprism reproduce --jobs N``: several experiments at once, each in its own process.

At small scale the experiments train tiny models with one torch thread each, so a 2-core
machine runs two of them in about the time of one.  Every experiment runs in a fresh spawned
process (no torch state, thread setting or memory carried from one to the next) whose output
goes to ``<out>/<name>.log``; the parent prints one block per experiment as it finishes and,
when a process dies (an exception, a crash, a kill), the end of its log and a failed result, so
one broken experiment never hides the others.  Each process gets at most its share of the
cores as torch threads (:func:`threads_per_job`): two experiments of two threads each on two
cores spend most of their time waiting for each other's threads.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from netprism.experiments import Claim, Result

__all__ = ["AUTO_JOBS_CAP", "auto_jobs", "failed_result", "run_in_processes", "threads_per_job"]

AUTO_JOBS_CAP = 4
"""``--jobs auto`` never starts more processes than this (memory: a few GB each at most)."""

_LOG_TAIL_LINES = 25


def auto_jobs(n_experiments: int, scale: str) -> int:
    """Processes for ``--jobs auto``: one per usable CPU core (at most :data:`AUTO_JOBS_CAP`)
    for the tiny and small scales on a CPU-only machine, else 1 (a GPU is one shared device,
    and full-scale configs may use every core in one process)."""
    import torch

    if scale == "full" or torch.cuda.is_available():
        return 1
    return max(1, min(n_experiments, _cores(), AUTO_JOBS_CAP))


def threads_per_job(jobs: int) -> int:
    """Torch threads each of ``jobs`` concurrent experiments may use: its share of the cores
    (at least 1).  An experiment configured for more (or for 0, torch's default of every
    core) is capped to it; one configured for fewer keeps its own."""
    return max(1, _cores() // max(1, jobs))


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def failed_result(name: str, scale: str, seconds: float) -> Result:
    """What stands in the report for an experiment that did not finish: one claim that fails."""
    claim = Claim(
        id="ran",
        text="experiment ran to completion (see the log for the error)",
        measured=0.0,
        target=1.0,
        op=">=",
    )
    return Result(
        name=name, config={}, metrics={}, claims=[claim], seconds=round(seconds, 3), scale=scale
    )


def run_in_processes(
    names: Sequence[str],
    scale: str,
    out: Path,
    jobs: int,
    on_done: Callable[[Result], None],
) -> int:
    """Run ``names`` at ``scale`` into ``out/<name>``, at most ``jobs`` at a time, in list order.

    Parameters
    ----------
    names : sequence of str
        Registered experiment names.
    scale : str
        The scale every experiment runs at.
    out : Path
        The reproduce folder; each experiment writes ``out/<name>/`` and ``out/<name>.log``.
    jobs : int
        How many processes run at once (>= 1).
    on_done : callable
        Called with each finished experiment's result (a failed one included), in the order
        they finish.

    Returns
    -------
    int
        How many experiments failed.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    ctx = multiprocessing.get_context("spawn")
    pending = list(names)
    running: dict[Any, tuple[str, Any, float]] = {}
    failures = 0
    threads = threads_per_job(jobs)
    previous = _stop_on_sigterm()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                proc = ctx.Process(
                    target=_child,
                    args=(name, scale, str(out / name), str(_log(out, name)), threads),
                )
                proc.start()
                running[proc.sentinel] = (name, proc, time.perf_counter())
                started = len(names) - len(pending)
                print(f"[{started}/{len(names)}] {name} started, log {_log(out, name)}", flush=True)
            for sentinel in wait(list(running)):
                name, proc, start = running.pop(sentinel)
                proc.join()
                result = _collect(name, out, proc.exitcode, time.perf_counter() - start)
                failures += result is None
                on_done(result or _saved_failure(name, scale, out, time.perf_counter() - start))
    finally:
        for _, proc, _ in running.values():  # interrupted: leave no experiment running
            proc.terminate()
            proc.join()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return failures


def _stop_on_sigterm() -> Any:
    """Make SIGTERM (``kill``) raise ``SystemExit`` here, so the caller's ``finally`` stops the
    running experiments instead of leaving them orphaned; returns the previous handler (None
    off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _log(out: Path, name: str) -> Path:
    return out / f"{name}.log"


def _child(name: str, scale: str, out_dir: str, log: str, threads: int) -> None:
    """One experiment in a spawned process with at most ``threads`` torch threads, its stdout
    and stderr (bars, warnings, C-level output too) in ``log``; exits 1 after printing the
    traceback when it raises."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from netprism.experiments import EXPERIMENTS, load_experiments
    from netprism.experiments.base import execute

    load_experiments()
    print(f"netprism reproduce: {name} at scale {scale} (process {os.getpid()})", flush=True)
    try:
        own = getattr(EXPERIMENTS.get(name).make_config(scale), "threads", None)
        capped = {} if own is None or 0 < own <= threads else {"threads": threads}
        if capped:
            print(f"torch threads capped from {own} to {threads} (its share of the cores)")
        result = execute(name, scale=scale, out_dir=out_dir, **capped)
        print(f"finished in {result.seconds:.1f} s")
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()


def _collect(name: str, out: Path, exitcode: int | None, seconds: float) -> Result | None:
    """The finished experiment's saved result, or None (after printing the end of its log)
    when the process failed or left no readable ``result.json``."""
    if exitcode == 0:
        try:
            return Result.load(out / name / "result.json")
        except (OSError, ValueError) as err:
            why = f"its result.json is unreadable ({err})"
    else:
        why = f"its process exited with status {exitcode}"
    log = _log(out, name)
    print(f"{name} failed after {seconds:.0f} s: {why}; the end of {log}:", file=sys.stderr)
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = ["(no log)"]
    print("\n".join(lines[-_LOG_TAIL_LINES:]), file=sys.stderr, flush=True)
    return None


def _saved_failure(name: str, scale: str, out: Path, seconds: float) -> Result:
    result = failed_result(name, scale, seconds)
    result.save(out / name)
    return result
