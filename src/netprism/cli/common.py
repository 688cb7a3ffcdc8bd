"""Helpers every ``netprism`` command shares: one-line errors, the ``--out`` folder of a run.

A run's output folder is checked, created and locked by :func:`claimed_out` (used by ``netprism
run|reproduce`` and ``netprism lm train``); :class:`OneLineParser` prints argparse errors as one
line.  The experiments' options come from :mod:`netprism.cli.options`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import typing
from pathlib import Path

from netprism.experiments import EXPERIMENTS
from netprism.io import LOCK_NAME, ensure_writable_dir, folder_lock, load_json, read_lock


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
