"""The memory budget every reader enforces before it allocates what a file declares.

A file's header (IDX dimensions, a pickle's array shape, an image's width and height) says how
much memory reading it will take; a small or small-compressed file can declare gigabytes.  Each
reader computes the bytes it is about to hold -- the decoded float32 dataset, plus what is
decoded on the way -- from those declared sizes and refuses with :class:`DataBudgetError`
(a ``ValueError`` naming the file and the budget) *before* allocating or inflating anything.

The budget is ``max_bytes`` (``load_dataset(..., max_bytes=N)``; ``read_idx(path,
max_bytes=N)``).  When it is not given, the environment variable ``NETPRISM_MAX_DATA_BYTES``
is used, else :data:`DEFAULT_MAX_BYTES` (4 GiB: the whole of CIFAR-10 or MNIST as float32 fits
in a sixth of it, and it leaves room on a machine with 8 GiB or more).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 4 << 30
ENV_VAR = "NETPRISM_MAX_DATA_BYTES"
FLOAT32 = 4  # bytes per value of the tensors the readers return


class DataBudgetError(ValueError):
    """Reading a file would take more memory than the reader's ``max_bytes`` budget."""


def _human(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.2f} {unit}"
    return f"{n} B"


def resolve_max_bytes(max_bytes: Any = None) -> int:
    """The budget in bytes: ``max_bytes`` if given, else ``$NETPRISM_MAX_DATA_BYTES``, else
    :data:`DEFAULT_MAX_BYTES`.

    Raises
    ------
    ValueError
        A budget that is not a positive integer.
    """
    source = "max_bytes"
    if max_bytes is None:
        env = os.environ.get(ENV_VAR)
        if env is None:
            return DEFAULT_MAX_BYTES
        source = f"${ENV_VAR}"
        try:
            max_bytes = int(env.strip())
        except ValueError:
            raise ValueError(f"{source} must be a positive integer of bytes, got {env!r}") from None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"{source} must be a positive integer of bytes, got {max_bytes!r}")
    return max_bytes


def check_budget(need: int, max_bytes: int, path: Path | str, what: str) -> None:
    """Refuse when ``need`` bytes exceed ``max_bytes``.

    Parameters
    ----------
    need : int
        Bytes the reader is about to hold.
    max_bytes : int
        The budget (already resolved by :func:`resolve_max_bytes`).
    path : path
        The file (or folder) named in the error.
    what : str
        What the bytes are, e.g. ``"dims (60000, 28, 28) as float32"``.

    Raises
    ------
    DataBudgetError
        ``need > max_bytes``, naming ``path``, ``what``, both sizes and how to raise it.
    """
    if need > max_bytes:
        raise DataBudgetError(
            f"{path}: {what} would take {need} bytes ({_human(need)}), over the reader "
            f"budget max_bytes={max_bytes} ({_human(max_bytes)}); pass a larger max_bytes= "
            f"(load_dataset(..., max_bytes=N)) or set {ENV_VAR} if the machine has the memory"
        )
