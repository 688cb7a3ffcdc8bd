"""Safe file input and output.

Atomic writes: write to a temporary file beside the target, then rename into place, so a
reader never sees a half-written file and a crash mid-write leaves the old file intact.
:func:`load_json` parses JSON with a nesting limit; :func:`folder_lock` keeps two runs from
writing one folder at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``.

    The temporary file sits beside ``path`` (same file system, so the rename is atomic) and
    is removed whatever goes wrong, so a failure leaves the previous ``path`` untouched and no
    debris behind.

    Raises
    ------
    OSError
        The folder cannot be created, or the write, flush or rename failed (disk full,
        read-only file system, permissions: ``PermissionError`` for the latter); the message
        names ``path`` and the reason, and the original error is chained.  A writer's own
        exception that carries an OS error (safetensors' ``"(os error 28)"``) becomes this
        ``OSError`` too.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _named(e, f"cannot write {path}: cannot create a file in {path.parent}") from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        cause = _os_error(e)
        if cause is None:
            raise
        raise _named(cause, f"cannot write {path} (previous version, if any, left intact)") from e
    return path


# Writers implemented in Rust/C (safetensors) report a failed write as their own exception
# type whose message ends "... (os error 28)"; it is still a disk-full / permission error.
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _os_error(err: BaseException) -> OSError | None:
    if isinstance(err, OSError):
        return err
    match = _OS_ERROR.search(str(err)) if isinstance(err, Exception) else None
    if match is None:
        return None
    code = int(match.group(1))
    return OSError(code, os.strerror(code))


def _named(err: OSError, what: str) -> OSError:
    """``err`` re-made with ``what`` in its message; the errno (and so the subclass:
    ``PermissionError`` for EACCES, ...) is kept."""
    reason = err.strerror or str(err)
    if err.errno is None:
        return OSError(f"{what}: {reason}")
    return OSError(err.errno, f"{what}: {reason}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it is writable now, before any work is done.

    Raises
    ------
    PermissionError
        The folder (or a parent) cannot be created or written.
    OSError
        Any other reason the probe write failed (disk full, read-only file system), with the
        folder named in the message.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".netprism-probe.", dir=path)
        try:
            os.write(fd, b"0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except PermissionError as e:
        raise PermissionError(f"output folder {path} is not writable: {e.strerror}") from e
    except OSError as e:
        raise OSError(e.errno, f"cannot write to output folder {path}: {e.strerror}") from e
    return path


# --- JSON with a nesting limit ----------------------------------------------------------------

MAX_JSON_DEPTH = 64

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class JSONTooDeepError(json.JSONDecodeError):
    """A JSON document nested deeper than allowed.

    A subclass of :class:`json.JSONDecodeError` (so of ``ValueError``): code that already
    handles bad JSON handles this too.
    """


def json_depth(text: str, *, stop_above: int | None = None) -> tuple[int, int]:
    """The deepest nesting of arrays/objects in ``text`` and the offset of the bracket that
    first reaches it.

    Strings are skipped, so brackets inside them do not count; the text need not be valid
    JSON (a scan, not a parse).  With ``stop_above``, the scan stops at the first bracket
    deeper than that (returning its depth and offset).

    Examples
    --------
    >>> json_depth('{"a": [1, {"b": "[[["}]}')
    (3, 10)
    >>> json_depth("[[[[0]]]]", stop_above=2)
    (3, 2)
    """
    stripped = _JSON_STRING.sub(lambda m: " " * len(m.group()), text)
    depth = deepest = where = 0
    for match in re.finditer(r"[\[\]{}]", stripped):
        depth += 1 if match.group() in "[{" else -1
        if depth > deepest:
            deepest, where = depth, match.start()
            if stop_above is not None and deepest > stop_above:
                break
    return deepest, where


def load_json(
    source: str | bytes | os.PathLike[str],
    *,
    max_depth: int = MAX_JSON_DEPTH,
    name: str | os.PathLike[str] | None = None,
) -> Any:
    """Parse JSON from a file (a path object) or from text (``str``/``bytes``), refusing
    documents nested deeper than ``max_depth`` before parsing them.

    Python's parser recurses once per level, so a small file of ``[[[[...`` raises
    ``RecursionError`` (or exhausts the stack); the depth is checked first, by a scan.

    Parameters
    ----------
    source
        A path object (``pathlib.Path``): the file is read as UTF-8.  A ``str`` or ``bytes``
        is the JSON text itself.
    max_depth
        The deepest nesting of arrays and objects allowed (``1`` for ``[1, 2]``).
    name
        What to call the document in errors (default: the path, or ``"JSON text"``).

    Raises
    ------
    JSONTooDeepError
        Nested deeper than ``max_depth``; the message names the document, the limit and the
        position.  A ``json.JSONDecodeError``, so a ``ValueError``.
    json.JSONDecodeError
        Not valid JSON.
    OSError, UnicodeDecodeError
        The file cannot be read, or is not UTF-8.

    Examples
    --------
    >>> load_json('{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> load_json("[[[0]]]", max_depth=2)
    Traceback (most recent call last):
    ...
    netprism.io.JSONTooDeepError: JSON text is nested deeper than 2 levels: line 1 column 3 (char 2)
    """
    if isinstance(source, os.PathLike):
        label = str(name if name is not None else source)
        text = Path(source).read_text(encoding="utf-8")
    else:
        label = str(name) if name is not None else "JSON text"
        text = source.decode("utf-8") if isinstance(source, bytes) else source
    depth, where = json_depth(text, stop_above=max_depth)
    if depth > max_depth:
        raise JSONTooDeepError(f"{label} is nested deeper than {max_depth} levels", text, where)
    return json.loads(text)


# --- one writer per output folder -------------------------------------------------------------

LOCK_NAME = ".netprism.lock"


class FolderLockedError(OSError):
    """Another live process holds the folder's lock file."""


def read_lock(folder: str | Path) -> tuple[int | None, str] | None:
    """The ``(pid, owner)`` recorded in ``folder``'s lock file, or ``None`` without one.

    ``pid`` is ``None`` when the file cannot be parsed (being written, or damaged).
    """
    path = Path(folder) / LOCK_NAME
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    except OSError:
        return None, ""
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    return pid, (lines[1] if len(lines) > 1 else "")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def folder_lock(
    folder: str | Path, *, owner: str = "", warn: Callable[[str], object] | None = None
) -> Iterator[Path]:
    """Hold ``folder/.netprism.lock`` for the block: one writer per folder at a time.

    The lock file is created atomically (``O_CREAT | O_EXCL``) and holds this process's pid
    and ``owner``; it is removed when the block ends, however it ends.  A lock whose pid is
    dead (a killed run) is taken over, and ``warn`` (default :func:`warnings.warn`) is told.
    The folder must exist.

    Raises
    ------
    FolderLockedError
        A live process holds the lock, or the lock file cannot be parsed; the message names
        the folder, the pid and the lock file to delete if no run is using the folder.
    """
    folder = Path(folder)
    lock = folder / LOCK_NAME
    _acquire(lock, owner, warn or (lambda msg: warnings.warn(msg, stacklevel=4)))
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _acquire(lock: Path, owner: str, warn: Callable[[str], object]) -> None:
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(lock.parent)
            if held is None:
                continue  # released meanwhile: try again
            pid, _ = held
            if pid is None or pid_alive(pid):
                who = f"pid {pid}" if pid is not None else "an unknown process"
                raise FolderLockedError(
                    f"{lock.parent} is in use by another netprism run ({who}); wait for it, "
                    f"choose another folder, or delete {lock} if no run is using it"
                ) from None
            warn(f"taking over the stale lock {lock} of a run that died (pid {pid})")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n{owner}\n")
        return
    raise FolderLockedError(f"cannot take the lock {lock}: other runs keep taking it")
