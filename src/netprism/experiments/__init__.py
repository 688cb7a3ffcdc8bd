"""Reproductions, one package per paper, each registered in ``EXPERIMENTS``.

Every subpackage is imported by :func:`load_experiments`, so adding an experiment adds one
package (its layout and the :class:`~netprism.experiments.base.SeedStudy` template: see
``docs/architecture.md`` in the repository).
"""

from __future__ import annotations

import importlib
import pkgutil

from netprism.experiments.base import (
    EXPERIMENTS,
    SCALES,
    Claim,
    Experiment,
    Result,
    library_versions,
    register_experiment,
)

_INFRA = {"base"}


def load_experiments() -> list[str]:
    """Import every experiment module (registering it) and return the registered names."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _INFRA and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return EXPERIMENTS.names()


__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "Claim",
    "Experiment",
    "Result",
    "library_versions",
    "load_experiments",
    "register_experiment",
]
