"""The report's "faithful reproductions" table: each claim next to its twin re-run in the
paper's setting (id ``<claim>_faithful``), with the one-line verdict of
:func:`netprism.core.results.faithful_verdict`: holds as reproduced, holds only in the paper's
setting, or does not hold here (and the mechanism measured)."""

from __future__ import annotations

from html import escape

from netprism.core.results import FAITHFUL, Claim, Result, faithful_verdict


def twin_pairs(result: Result) -> list[tuple[Claim, Claim]]:
    """``(original, twin)`` for every claim of ``result`` that has a ``_faithful`` twin."""
    by_id = {c.id: c for c in result.claims}
    return [
        (by_id[c.id.removesuffix(FAITHFUL)], c)
        for c in result.claims
        if c.id.endswith(FAITHFUL) and c.id.removesuffix(FAITHFUL) in by_id
    ]


def faithful_table(results: list[Result]) -> str:
    """An HTML section (empty string when no result has a twin)."""
    rows = [
        f"<tr><td>{escape(r.name)}</td><td><code>{escape(original.id)}</code></td>"
        f"<td>{escape(_settings(twin))}</td><td>{escape(faithful_verdict(original, twin))}</td>"
        "</tr>"
        for r in results
        for original, twin in twin_pairs(r)
    ]
    if not rows:
        return ""
    head = "<tr><th>experiment</th><th>claim</th><th>faithful variant</th><th>verdict</th></tr>"
    return (
        "<h2>Faithful reproductions</h2><p>Each claim that did not hold was re-run, with "
        "settings written down before the run, in the paper's setting.</p>"
        f'<table class="board"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _settings(twin: Claim) -> str:
    parts = [f"{k}={v}" for k, v in (twin.settings or {}).items()]
    if twin.seeds:
        parts.append(f"seeds {', '.join(map(str, twin.seeds))}")
    return "; ".join(parts) or "-"
