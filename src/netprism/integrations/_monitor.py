"""What both adapters share: building the monitor they drive from the user's arguments."""

from __future__ import annotations

from typing import Any

from netprism.memorization import MemorizationMonitor


def resolve_monitor(
    score_data: Any, monitor: MemorizationMonitor | None, **settings: Any
) -> MemorizationMonitor:
    """The user's own ``monitor``, or one built on ``score_data`` with ``settings``."""
    if monitor is None:
        if score_data is None:
            raise ValueError("pass score_data (the un-augmented training set) or monitor=")
        return MemorizationMonitor(score_data, **settings)
    if score_data is not None or settings:
        raise ValueError("pass either monitor= or score_data and monitor settings, not both")
    return monitor
