"""``netprism``: list, run and reproduce experiments, and rebuild reports.

The options of ``netprism run NAME`` are generated from the experiment's frozen config
dataclass, so the config is the one source of truth.

``torchrun --nproc-per-node N -m netprism run NAME ...`` runs an experiment on N ranks: rank 0
prints and writes the result folder, the other ranks run silently.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import os
import sys
import time
import traceback
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netprism.experiments import EXPERIMENTS, SCALES, Claim, Result, load_experiments
from netprism.experiments.base import execute


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netprism`` command; returns the exit status."""
    parser = _top_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command not in ("run", "lm") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.handler(args, rest))
    except (KeyError, ValueError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"netprism: error: {message}", file=sys.stderr)
        return 2


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netprism", description="Reproduce and apply the netprism methods."
    )
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
    p_rep.add_argument("--out", type=Path, default=None, help="default: runs/<timestamp>")
    p_rep.set_defaults(handler=_cmd_reproduce)
    p_report = sub.add_parser("report", help="rebuild report.html from a run folder")
    p_report.add_argument("dir", type=Path)
    p_report.set_defaults(handler=_cmd_report)
    p_lm = sub.add_parser(
        "lm",
        help="the byte-level LM: `netprism lm train|generate|adapt` (--help for each)",
        add_help=False,
    )
    p_lm.add_argument("lm_args", nargs=argparse.REMAINDER)
    p_lm.set_defaults(handler=_cmd_lm)
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
    overrides = {k: v for k, v in vars(opts).items() if k not in ("scale", "out") and v is not None}
    overrides = {k: (None if v is _NONE else v) for k, v in overrides.items()}
    out = opts.out or _stamp_dir() / args.name
    with _quiet_unless_main():
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
    out = args.out or _stamp_dir()
    failures = 0
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} (scale {args.scale})", flush=True)
        start = time.perf_counter()
        try:
            result = execute(name, scale=args.scale, out_dir=out / name)
        except Exception:  # one broken experiment must not hide the others
            failures += 1
            traceback.print_exc()
            result = _failed_result(name, args.scale, time.perf_counter() - start)
            result.save(out / name)
        _print_claims(result)
    from netprism.report import write_report

    report = write_report(out, out / "report.html")
    print(f"report: {report}")
    return 1 if failures else 0


def _cmd_lm(args: argparse.Namespace, rest: list[str]) -> int:
    from netprism.lm.cli import main as lm_main

    return lm_main([*args.lm_args, *rest])


def _cmd_report(args: argparse.Namespace, rest: list[str]) -> int:
    from netprism.report import write_report

    if not args.dir.is_dir():
        raise FileNotFoundError(f"run folder {args.dir} does not exist")
    print(f"report: {write_report(args.dir, args.dir / 'report.html')}")
    return 0


# --- options generated from a config dataclass ----------------------------------------------

_NONE = object()  # marks an explicit "none" given for an optional field


def config_parser(name: str, config_cls: type) -> argparse.ArgumentParser:
    """An argparse parser with one ``--field`` option per field of ``config_cls``."""
    parser = _SuggestingParser(prog=f"netprism run {name}", allow_abbrev=False)
    parser.add_argument("--scale", choices=SCALES, default="small")
    parser.add_argument("--out", type=Path, default=None)
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        flags = [f"--{field.name.replace('_', '-')}"]
        if "_" in field.name:
            flags.append(f"--{field.name}")
        kind, optional = _unwrap(hints[field.name])
        help_text = f"{_type_name(kind)} (default {field.default!r}; --scale presets may differ)"
        if kind is bool:
            parser.add_argument(
                *flags,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                *flags,
                dest=field.name,
                default=None,
                help=help_text,
                type=_converter(field.name, kind, optional),
            )
    return parser


class _SuggestingParser(argparse.ArgumentParser):
    """Adds "did you mean" to errors about unknown options."""

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("unrecognized arguments"):
            known = [s for a in self._actions for s in a.option_strings]
            words = [w.split("=")[0] for w in message.split(":", 1)[1].split()]
            close = {
                w: difflib.get_close_matches(w, known, n=1) for w in words if w.startswith("-")
            }
            hints = [f"{w} -> {m[0]}?" for w, m in close.items() if m]
            if hints:
                message += f" (did you mean: {', '.join(hints)})"
        super().error(message)


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); ``X`` -> (X, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _converter(name: str, kind: Any, optional: bool) -> Any:
    def convert(text: str) -> Any:
        if optional and text.lower() == "none":
            return _NONE
        try:
            if typing.get_origin(kind) is tuple:
                inner = typing.get_args(kind)[0]
                return tuple(inner(part) for part in text.split(",") if part)
            return kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(
                f"--{name.replace('_', '-')} expects {_type_name(kind)}, got {text!r}"
            ) from None

    convert.__name__ = _type_name(kind)
    return convert


# --- output ---------------------------------------------------------------------------------


def _stamp_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def _failed_result(name: str, scale: str, seconds: float) -> Result:
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


def _print_claims(result: Result) -> None:
    for claim in result.claims:
        mark = "holds" if claim.holds else "DOES NOT HOLD"
        print(
            f"  {claim.id}: measured {claim.measured:.4g} vs target {claim.op} "
            f"{claim.target:.4g} -> {mark}"
        )
    print(f"  ({result.seconds:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
