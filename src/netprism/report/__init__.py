"""Reporting: experiment results -> PNG figures -> a self-contained HTML scoreboard.

``netprism reproduce`` writes one ``result.json`` per experiment into a run folder;
:func:`write_report` turns that folder into ``report.html``.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from netprism.core.results import Claim, Result
>>> run = Path(tempfile.mkdtemp())
>>> _ = Result("demo", config={"epochs": 1}, metrics={"acc": 0.9},
...            claims=[Claim("acc", "accuracy >= 0.8", 0.9, 0.8)]).save(run / "demo")
>>> write_report(run).name
'report.html'
"""

from __future__ import annotations

from netprism.report.figures import bar_chart, save_figure
from netprism.report.html import (
    ResultItem,
    collect_results,
    format_value,
    render_html,
    write_report,
)

__all__ = [
    "ResultItem",
    "bar_chart",
    "collect_results",
    "format_value",
    "render_html",
    "save_figure",
    "write_report",
]
