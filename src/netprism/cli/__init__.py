"""``netprism``: list, run and reproduce experiments, rebuild reports, audit a dataset, and the
``lm`` commands.

The options of ``netprism run NAME`` are generated from the experiment's frozen config
dataclass (:mod:`netprism.cli.options`), so the config is the one source of truth; the output
folder of a run and one-line errors are in :mod:`netprism.cli.common`; ``netprism lm ...`` is
:mod:`netprism.cli.lm` (the commands of :mod:`netprism.lm`, registered here like the
experiments: the CLI imports the area, never the other way round).

``torchrun --nproc-per-node N -m netprism run NAME ...`` runs an experiment on N ranks: rank 0
prints and writes the result folder, the other ranks run silently.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path

from netprism.cli import audit as audit_cli
from netprism.cli.common import (
    _OVERWRITE_HELP,
    LM_TRAIN,
    REPRODUCE,
    OneLineParser,
    claimed_out,
    one_line,
    out_path,
    shown,
)
from netprism.cli.options import (
    _NONE,
    MAX_INT,
    MAX_LR,
    MAX_SEED,
    MAX_THREADS,
    config_parser,
)
from netprism.cli.reproduce import (
    AUTO_JOBS_CAP,
    auto_jobs,
    failed_result,
    run_in_processes,
    threads_per_job,
)
from netprism.experiments import EXPERIMENTS, SCALES, Result, load_experiments
from netprism.experiments.base import execute

__all__ = [
    "LM_TRAIN",
    "MAX_INT",
    "MAX_LR",
    "MAX_SEED",
    "MAX_THREADS",
    "REPRODUCE",
    "USER_ERRORS",
    "OneLineParser",
    "claimed_out",
    "config_parser",
    "main",
    "one_line",
    "out_path",
    "shown",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netprism`` command; returns the exit status.

    A user error (bad option, unknown name, unusable file or folder) is one line on stderr
    and status 2, argparse's convention; argparse's own errors end in ``SystemExit(2)``.  Any
    other exception is a bug: a one-line hint, the traceback, status 1.
    """
    parser = _top_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command not in ("run", "lm") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.handler(args, rest))
    except USER_ERRORS as err:
        print(f"netprism: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception:
        print(
            "netprism: internal error (a bug, not a problem with your input); please report "
            "it with the traceback below",
            file=sys.stderr,
        )
        traceback.print_exc()
        return 1


USER_ERRORS = (KeyError, ValueError, OSError)
"""What a user's input can cause: unknown names (``KeyError`` from the registries), invalid
values or files (``ValueError``, ``json.JSONDecodeError``), unusable paths (``OSError``)."""


def _top_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="netprism", description="Reproduce and apply the netprism methods.")
    sub = parser.add_subparsers(dest="command")
    p_list = sub.add_parser("list", help="list experiments")
    p_list.set_defaults(handler=_cmd_list)
    p_run = sub.add_parser(
        "run",
        help="run one experiment; `netprism run NAME --help` lists its options",
        add_help=False,
    )
    p_run.add_argument("name", nargs="?")
    p_run.add_argument("-h", "--help", action="store_true")
    p_run.set_defaults(handler=_cmd_run)
    p_rep = sub.add_parser("reproduce", help="run experiments and write report.html")
    p_rep.add_argument("names", nargs="*", help="experiments (default: all)")
    p_rep.add_argument("--demo", action="store_true", help="only the demo set")
    p_rep.add_argument("--scale", choices=SCALES, default="small")
    p_rep.add_argument("--out", type=out_path, default=None, help="default: runs/<timestamp>")
    p_rep.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
    p_rep.add_argument(
        "--jobs",
        type=_jobs,
        default="auto",
        help="experiments run at once, each in its own process with its output in "
        "<out>/<name>.log (default auto: one per CPU core, at most "
        f"{AUTO_JOBS_CAP}, at tiny and small scale without a GPU; else 1)",
    )
    p_rep.set_defaults(handler=_cmd_reproduce)
    p_report = sub.add_parser("report", help="rebuild report.html from a run folder")
    p_report.add_argument("dir", type=out_path, help="a run folder of `netprism reproduce`")
    p_report.set_defaults(handler=_cmd_report)
    p_lm = sub.add_parser(
        "lm",
        help="the byte-level LM: `netprism lm train|generate|adapt` (--help for each)",
        add_help=False,
    )
    p_lm.add_argument("lm_args", nargs=argparse.REMAINDER)
    p_lm.set_defaults(handler=_cmd_lm)
    audit_cli.add_parser(sub)
    return parser


def _cmd_list(args: argparse.Namespace, rest: list[str]) -> int:
    load_experiments()
    for name in EXPERIMENTS.names():
        exp = EXPERIMENTS.get(name)
        tag = " [demo]" if exp.demo else ""
        print(f"{name:<20}{tag:<8} {exp.paper}")
    return 0


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    load_experiments()
    if args.name is None:
        print(
            "usage: netprism run NAME [--scale S] [--out DIR] [--field value ...]\n"
            f"experiments: {', '.join(EXPERIMENTS.names())}"
        )
        return 0 if args.help else 2
    exp = EXPERIMENTS.get(args.name)
    _refuse_checkpoint_options(args.name, exp.config_cls, rest)
    parser = config_parser(args.name, exp.config_cls)
    if args.help:
        parser.print_help()
        return 0
    opts = parser.parse_args(rest)
    cli_only = ("scale", "out", "overwrite")
    overrides = {k: v for k, v in vars(opts).items() if k not in cli_only and v is not None}
    overrides = {k: (None if v is _NONE else v) for k, v in overrides.items()}
    exp.make_config(opts.scale, **overrides)  # invalid combinations fail before any write
    out = opts.out or _stamp_dir() / args.name
    with _quiet_unless_main(), claimed_out(out, args.name, overwrite=opts.overwrite):
        print(f"running {args.name} at scale {opts.scale} -> {out}")
        result = execute(args.name, scale=opts.scale, out_dir=out, **overrides)
        _print_claims(result)
    return 0


_CHECKPOINT_OPTIONS = {"--checkpoint-dir", "--checkpoint_dir", "--resume", "--no-resume"}


def _refuse_checkpoint_options(name: str, config_cls: type, rest: list[str]) -> None:
    """``--checkpoint-dir``/``--resume`` only for experiments that train one model (their
    config has both fields); elsewhere a clear error rather than "unrecognized arguments"."""
    given = sorted({w.split("=")[0] for w in rest} & _CHECKPOINT_OPTIONS)
    if not given or _takes_checkpoints(config_cls):
        return
    takers = [n for n in EXPERIMENTS.names() if _takes_checkpoints(EXPERIMENTS.get(n).config_cls)]
    raise ValueError(
        f"experiment {name!r} does not take {'/'.join(given)}: checkpoints and resume are for "
        f"experiments that train one model ({', '.join(takers) or 'none'}), and {name!r} "
        "trains several or none"
    )


def _takes_checkpoints(config_cls: type) -> bool:
    fields = {f.name for f in dataclasses.fields(config_cls)}
    return {"checkpoint_dir", "resume"} <= fields


@contextlib.contextmanager
def _quiet_unless_main() -> typing.Iterator[None]:
    """Silence stdout and stderr (bars, prints, warnings) on torchrun ranks other than 0."""
    from netprism.train.distributed import is_main_process

    if is_main_process():
        yield
        return
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        yield


def _cmd_reproduce(args: argparse.Namespace, rest: list[str]) -> int:
    load_experiments()
    names = args.names or [
        n for n in EXPERIMENTS.names() if EXPERIMENTS.get(n).demo or not args.demo
    ]
    for name in names:
        EXPERIMENTS.get(name)  # unknown names fail before anything runs
    jobs = auto_jobs(len(names), args.scale) if args.jobs == "auto" else args.jobs
    with claimed_out(args.out or _stamp_dir(), REPRODUCE, overwrite=args.overwrite) as out:
        return _reproduce(names, args.scale, out, jobs)


def _jobs(text: str) -> str | int:
    if text == "auto":
        return text
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if not 1 <= jobs <= MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a whole number from 1 to {MAX_THREADS}, got {text!r}"
        )
    return jobs


def _reproduce(names: list[str], scale: str, out: Path, jobs: int = 1) -> int:
    start = time.perf_counter()
    if jobs > 1:
        names = sorted(names, key=lambda n: -EXPERIMENTS.get(n).cost)  # longest first
        threads = threads_per_job(jobs)
        print(
            f"{len(names)} experiments, {jobs} at a time, at most {threads} torch thread(s) each",
            flush=True,
        )
        finished = iter(range(1, len(names) + 1))

        def done(result: Result) -> None:
            print(f"[{next(finished)}/{len(names)} done] {result.name}", flush=True)
            _print_claims(result)

        failures = run_in_processes(names, scale, out, jobs, done)
    else:
        failures = _run_in_turn(names, scale, out)
    from netprism.report import write_report

    report = write_report(out, out / "report.html")
    print(f"report: {report} ({time.perf_counter() - start:.0f} s in all)")
    return 1 if failures else 0


def _run_in_turn(names: list[str], scale: str, out: Path) -> int:
    """Each experiment in this process, one after the other, its output printed live."""
    failures = 0
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} (scale {scale})", flush=True)
        start = time.perf_counter()
        try:
            result = execute(name, scale=scale, out_dir=out / name)
        except Exception:  # one broken experiment must not hide the others
            failures += 1
            traceback.print_exc()
            result = failed_result(name, scale, time.perf_counter() - start)
            result.save(out / name)
        _print_claims(result)
    return failures


def _cmd_lm(args: argparse.Namespace, rest: list[str]) -> int:
    from netprism.cli.lm import main as lm_main

    return lm_main([*args.lm_args, *rest])


def _cmd_report(args: argparse.Namespace, rest: list[str]) -> int:
    from netprism.report import write_report

    folder = args.dir
    if folder.is_file():
        raise ValueError(
            f"`netprism report` expects a run folder (the --out of `netprism reproduce` or "
            f"`netprism run`), got the file {str(folder)!r}; pass the folder holding it"
        )
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {str(folder)!r} does not exist")
    print(f"report: {write_report(folder, folder / 'report.html')}")
    return 0


# --- output ---------------------------------------------------------------------------------


def _stamp_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def _print_claims(result: Result) -> None:
    from netprism.core.results import faithful_verdict
    from netprism.report.faithful import opt_in_command, twin_pairs

    for claim in result.claims:
        mark = "holds" if claim.holds else "DOES NOT HOLD"
        print(
            f"  {claim.id}: measured {claim.measured:.4g} vs target {claim.op} "
            f"{claim.target:.4g} -> {mark}"
        )
    for original, twin in twin_pairs(result):
        print(f"  {original.id}: {faithful_verdict(original, twin)}")
    if (command := opt_in_command(result)) is not None:
        print(f"  faithful twin not run at this scale (opt-in): {command}")
    print(f"  ({result.seconds:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
