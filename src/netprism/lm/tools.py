"""Deprecated alias of :mod:`netprism.lm.guided.tools`, kept for one release.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), guided
generation.  Importing this module emits a ``DeprecationWarning``; import from
``netprism.lm.guided.tools`` (or ``netprism.lm.guided``) instead.
"""

import warnings
from typing import Any

from netprism.lm.guided import tools as _new
from netprism.lm.guided.tools import *  # noqa: F403

warnings.warn(
    "netprism.lm.tools is deprecated and will be removed; "
    "import from netprism.lm.guided.tools instead",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Private names too (``_helper``), from :mod:`netprism.lm.guided.tools`."""
    return getattr(_new, name)
