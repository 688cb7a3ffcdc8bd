"""Name -> factory registries (models, datasets, experiments), in the spirit of timm.

Adding an entry touches one file: decorate the factory with ``@REGISTRY.register("name")``.
Tests iterate ``REGISTRY.names()`` so a new entry is tested automatically.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories with clear errors on unknown names.

    Parameters
    ----------
    kind : str
        What the entries are ("model", "dataset", ...), used in error messages.

    Examples
    --------
    >>> MODELS: Registry = Registry("model")
    >>> @MODELS.register("identity")
    ... def identity(x):
    ...     return x
    >>> MODELS.get("identity")(3)
    3
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; ``meta`` is stored beside it."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise ``KeyError`` listing the known names."""
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(self._unknown_message(name)) from None

    def meta(self, name: str) -> dict[str, Any]:
        """Metadata given at registration (e.g. ``demo=True`` for experiments)."""
        self.get(name)
        return dict(self._meta[name])

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._entries, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        return f"unknown {self.kind} {name!r}: expected one of {self.names()}{hint}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
