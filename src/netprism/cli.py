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
import math
import os
import re
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
from netprism.io import LOCK_NAME, ensure_writable_dir, folder_lock, load_json, read_lock


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


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (a ``KeyError``'s without the quotes ``str`` adds)."""
    message: object = err
    if isinstance(err, KeyError) and err.args:
        message = err.args[0]
    elif isinstance(err, OSError) and err.strerror:  # without "[Errno 2] "
        message = err.strerror
        if err.filename is not None and str(err.filename) not in err.strerror:
            message = f"{err.strerror}: {str(err.filename)!r}"
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, its middle elided when longer than ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    half = limit // 2
    return f"{text[:half]!r}...{text[-half:]!r} ({len(text)} characters)"


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), status 2."""

    def error(self, message: str) -> typing.NoReturn:
        named = re.match(r"argument ([^:]+): (-[\w-]+) ", message)
        if named and named.group(2) in named.group(1).split("/"):  # the flag said twice
            message = message[len(f"argument {named.group(1)}: ") :]
        self.exit(2, f"{self.prog}: error: {one_line(ValueError(message))} (see --help)\n")


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
    with claimed_out(args.out or _stamp_dir(), REPRODUCE, overwrite=args.overwrite) as out:
        return _reproduce(names, args.scale, out)


def _reproduce(names: list[str], scale: str, out: Path) -> int:
    failures = 0
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} (scale {scale})", flush=True)
        start = time.perf_counter()
        try:
            result = execute(name, scale=scale, out_dir=out / name)
        except Exception:  # one broken experiment must not hide the others
            failures += 1
            traceback.print_exc()
            result = _failed_result(name, scale, time.perf_counter() - start)
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


# --- the output folder ----------------------------------------------------------------------

REPRODUCE = "reproduce"  # the owner name of a `netprism reproduce` folder
LM_TRAIN = "lm train"  # ... and of a `netprism lm train` one

_OVERWRITE_HELP = "write into --out even if it holds something other than a previous run"


def out_path(text: str) -> Path:
    """argparse type of ``--out`` and other paths: a non-empty path."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {shown(text)}")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"a path cannot contain a NUL byte, got {shown(text)}")
    return Path(text)


@contextlib.contextmanager
def claimed_out(out: Path, owner: str, *, overwrite: bool = False) -> typing.Iterator[Path]:
    """Make ``out`` the folder of this run for the block: checked, created and locked.

    ``out`` must be a new or empty folder, or hold a previous run of ``owner`` (an experiment
    name, or :data:`REPRODUCE`), unless ``overwrite``.  Its lock file
    (:func:`netprism.io.folder_lock`) keeps a second run out while this one writes; folders
    this call created are removed again if they are still empty at the end.  On torchrun
    ranks other than 0 (which write nothing) this does nothing.

    Raises
    ------
    ValueError
        ``out`` is a file, lies under a file, or holds something else (without ``overwrite``).
    OSError
        ``out`` cannot be created or written; :class:`netprism.io.FolderLockedError` when
        another live run holds it.
    """
    from netprism.train.distributed import is_main_process

    if not is_main_process():
        yield out
        return
    _check_not_a_file(out)
    created = _missing_parents(out)
    previous = read_lock(out) if out.is_dir() else None
    try:
        ensure_writable_dir(out)
        with folder_lock(out, owner=owner, warn=_warn):
            _check_contents(out, owner, overwrite, stale_owner=previous[1] if previous else "")
            yield out
    finally:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty


def _warn(message: str) -> None:
    print(f"netprism: warning: {message}", file=sys.stderr)


def _check_not_a_file(out: Path) -> None:
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            where = "is" if path == out else f"lies under {str(path)!r}, which is"
            raise ValueError(f"--out {str(out)!r} {where} a file; expected a folder")


def _missing_parents(out: Path) -> list[Path]:
    """The folders from ``out`` up that do not exist yet, deepest first."""
    missing = []
    for path in (out, *out.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def _check_contents(out: Path, owner: str, overwrite: bool, *, stale_owner: str) -> None:
    entries = [p.name for p in out.iterdir() if p.name not in (LOCK_NAME,)]
    entries = [e for e in entries if not e.startswith(".netprism-probe.")]
    if not entries or overwrite:
        return
    if stale_owner == owner or _previous_run_of(out, owner):
        _warn(f"writing over the previous run of {owner!r} in {str(out)!r}")
        return
    what = "a `netprism reproduce` run" if owner == REPRODUCE else f"a run of {owner!r}"
    raise ValueError(
        f"--out {str(out)!r} is not empty ({len(entries)} entries, e.g. {sorted(entries)[0]!r}) "
        f"and is not {what}; choose a new or empty folder, or pass --overwrite"
    )


def _previous_run_of(out: Path, owner: str) -> bool:
    """Whether ``out`` holds what a run of ``owner`` writes: ``report.html`` or experiment
    folders (``netprism reproduce``), a saved model (``lm train``), or a ``result.json`` of
    experiment ``owner``."""
    if owner == REPRODUCE:
        names = set(EXPERIMENTS.names())
        parts = [p for p in out.iterdir() if p.name != LOCK_NAME]
        return (out / "report.html").is_file() or all(p.is_dir() and p.name in names for p in parts)
    if owner == LM_TRAIN:
        return (out / "config.json").is_file()
    try:
        saved = load_json(out / "result.json")
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("name") == owner


# --- options generated from a config dataclass ----------------------------------------------

_NONE = object()  # marks an explicit "none" given for an optional field


def config_parser(name: str, config_cls: type) -> argparse.ArgumentParser:
    """An argparse parser with one ``--field`` option per field of ``config_cls``."""
    parser = _SuggestingParser(prog=f"netprism run {name}", allow_abbrev=False)
    parser.add_argument("--scale", choices=SCALES, default="small")
    parser.add_argument("--out", type=out_path, default=None, help="default: runs/<time>/NAME")
    parser.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        flags = [f"--{field.name.replace('_', '-')}"]
        if "_" in field.name:
            flags.append(f"--{field.name}")
        kind, optional = _unwrap(hints[field.name])
        rule = _rule(field.name, kind)
        help_text = (
            f"{_type_name(kind)}{rule.describe()} (default {field.default!r}; --scale presets "
            "may differ)"
        )
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
                type=_converter(field.name, kind, optional, rule),
            )
    return parser


class _SuggestingParser(OneLineParser):
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
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"comma-separated {_type_name(args[0])}s"
    if typing.get_origin(tp) is tuple:
        return ":".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _converter(name: str, kind: Any, optional: bool, rule: _Rule) -> Any:
    flag = f"--{name.replace('_', '-')}"

    def convert(text: str) -> Any:
        if optional and text.strip().lower() == "none":
            return _NONE
        try:
            value = _parse(kind, text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{flag} expects {_type_name(kind)}, got {shown(text)}"
            ) from None
        problem = rule.check(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{flag} expects {problem}, got {shown(text)}")
        return value

    convert.__name__ = _type_name(kind)
    return convert


def _parse(kind: Any, text: str) -> Any:
    """``text`` as a ``kind``: ``int``, ``float``, ``str``, ``tuple[X, ...]`` (comma-separated)
    or ``tuple[tuple[A, B], ...]`` (``a:b`` items, comma-separated)."""
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) != 2 or args[1] is not Ellipsis:
            return _parse_pair(kind, text)
        parts = [part for part in text.split(",") if part.strip()]
        return tuple(_parse(args[0], part) for part in parts)
    if typing.get_origin(kind) is None and kind in (int, float):
        return kind(text.strip())
    if typing.get_origin(kind) is None and callable(kind):
        return kind(text)
    raise TypeError(f"cannot parse {kind}")


def _parse_pair(kind: Any, text: str) -> tuple[Any, ...]:
    kinds = typing.get_args(kind)
    parts = text.split(":")
    if len(parts) != len(kinds):
        raise ValueError(f"expected {len(kinds)} ':'-separated values, got {shown(text)}")
    return tuple(_parse(k, p) for k, p in zip(kinds, parts, strict=True))


# --- what a config value may be -------------------------------------------------------------

MAX_INT = 2**31 - 1  # counts and sizes: beyond this nothing finishes (or torch overflows)
MAX_SEED = 2**32 - 1  # NumPy's seed range; torch accepts it too
MAX_LR = 100.0  # no optimiser here is stable near this; 1e30 is a typo
MAX_THREADS = 1024


@dataclasses.dataclass(frozen=True)
class _Rule:
    """The range a numeric config field's values (each item of a tuple) must lie in."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    note: str = ""

    def check(self, value: Any) -> str | None:
        """A description of what was expected, if ``value`` (or an item of it) breaks the
        rule; ``None`` when it is fine."""
        if isinstance(value, tuple):
            return next((p for p in map(self.check, value) if p), None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        bad = isinstance(value, float) and not math.isfinite(value)  # ints may exceed floats
        bad = bad or (
            self.low is not None and (value <= self.low if self.low_open else value < self.low)
        )
        bad = bad or (self.high is not None and value > self.high)
        if not bad:
            return None
        return (
            f"a finite number{self.describe()}"
            if isinstance(value, float)
            else f"an int{self.describe()}"
        )

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"<= {_num(self.high)}")
        text = " and ".join(parts)
        return f" {text}{self.note}" if text else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _rule(name: str, kind: Any) -> _Rule:
    """The range of field ``name`` of type ``kind``: by what the name says it is."""
    item = kind
    while typing.get_origin(item) is tuple:
        item = typing.get_args(item)[0]
    is_tuple = item is not kind
    if item is float:
        if name in ("lr", "lrs") or name.endswith("_lr"):
            return _Rule(0, MAX_LR, low_open=True)
        return _Rule()
    if item is not int:
        return _Rule()
    if name == "seed" or name.endswith("_seed") or (is_tuple and name.endswith("seeds")):
        return _Rule(0, MAX_SEED)
    if name == "threads":
        return _Rule(0, MAX_THREADS, note=" (0: torch's default)")
    if name == "batch_size" or name.endswith("_batch_size") or name.endswith("_batch"):
        return _Rule(1, MAX_INT)
    return _Rule(0, MAX_INT)


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
