"""Shared checks of the reliability suite: what a "clear error" is."""

import time
from pathlib import Path

import pytest

# Seconds one malformed input may take to be refused: a hang or a slow huge allocation fails.
FAST_S = 5.0


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def refuses():
    """``refuses(call, path, folder=None)``: ``call()`` must raise a ``ValueError`` (netprism's
    errors subclass it) whose message names ``path``, quickly, writing nothing in ``folder``."""

    def check(call, path, folder=None, match=None):
        before = _listing(Path(folder)) if folder is not None else None
        start = time.perf_counter()
        with pytest.raises(ValueError) as info:
            call()
        assert time.perf_counter() - start < FAST_S
        message = str(info.value)
        assert str(path) in message, message
        if match is not None:
            assert match in message, message
        if folder is not None:
            assert _listing(Path(folder)) == before  # no partial output
        return info.value

    return check
