"""The report's "faithful reproductions" table: each claim next to its twin re-run in the
paper's setting (id ``<claim>_faithful``), with the one-line verdict of
:func:`netprism.core.results.faithful_verdict`: holds as reproduced, holds only in the paper's
setting, or does not hold here (and the mechanism measured).  An experiment whose twin is
opt-in at the scale it ran (``faithful_seeds`` empty in its config) gets a row saying so, with
the command that runs it."""

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


def opt_in_command(result: Result) -> str | None:
    """The command that runs ``result``'s faithful twin when it was opt-in (``faithful_seeds``
    empty) at the scale it ran, on the run's own seeds; else None."""
    if "faithful_seeds" not in result.config or result.config["faithful_seeds"]:
        return None
    seeds = ",".join(str(s) for s in result.config.get("seeds", (0, 1, 2)))
    return f"netprism run {result.name} --scale {result.scale} --faithful-seeds {seeds}"


def faithful_table(results: list[Result]) -> str:
    """An HTML section (empty string when no result has a twin, run or opt-in)."""
    rows = [
        f"<tr><td>{escape(r.name)}</td><td><code>{escape(original.id)}</code></td>"
        f"<td>{escape(_settings(twin))}</td><td>{escape(faithful_verdict(original, twin))}</td>"
        "</tr>"
        for r in results
        for original, twin in twin_pairs(r)
    ]
    rows += [
        f"<tr><td>{escape(r.name)}</td><td>-</td><td>not run at this scale (opt-in)</td>"
        f"<td><code>{escape(command)}</code></td></tr>"
        for r in results
        if (command := opt_in_command(r)) is not None
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
