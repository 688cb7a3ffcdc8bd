"""Deprecated alias of :mod:`netprism.lm.guided.nodes`, kept for one release.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), guided
generation.  Importing this module emits a ``DeprecationWarning``; import from
``netprism.lm.guided.nodes`` (or ``netprism.lm.guided``) instead.
"""

import warnings
from typing import Any

from netprism.lm.guided import nodes as _new
from netprism.lm.guided.nodes import *  # noqa: F403

warnings.warn(
    "netprism.lm.schema_nodes is deprecated and will be removed; "
    "import from netprism.lm.guided.nodes instead",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Private names too (``_helper``), from :mod:`netprism.lm.guided.nodes`."""
    return getattr(_new, name)
