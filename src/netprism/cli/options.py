"""``netprism run NAME`` options generated from the experiment's frozen config dataclass.

One ``--field`` option per field, typed from the field's annotation (ints, floats, strings,
comma-separated tuples, ``a:b`` pairs, booleans as ``--flag/--no-flag``, ``none`` for optional
fields) and range-checked by what the field's name says it is (``lr``, ``seed``, ...), so the config
stays the one source of truth.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import types
import typing
from typing import Any

from netprism.cli.common import _OVERWRITE_HELP, OneLineParser, out_path, shown
from netprism.experiments import SCALES

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
