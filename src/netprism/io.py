"""Atomic file writes: write to a temporary file beside the target, then rename into place.

A reader never sees a half-written file, and a crash mid-write leaves the old file intact.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path


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
